"""`command: github-sync` of the composite action, run by real `act` against the local
GitHub API stand-in (tests/github_api.py) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sops_deploy import tools
from sops_deploy.environment import tool_places
from tests.github_api import GitHubApi
from tests.support import REPO, AgeIdentity, assert_no_secrets
from tests.test_action import ACT, ActRun, act_cache, wheelhouse  # noqa: F401 (act_cache: a fixture)

WORKFLOW = "tests/workflows/github-sync-test.yml"
TOKEN = "ghp_act_sync_token_0a1b2c3d4e5f"
PLAIN = "API_TOKEN=tok_act_sync_1234abcd\nDB_PASSWORD=act-sync-pw-5678\n"


@pytest.fixture
def github() -> Iterator[GitHubApi]:
    with GitHubApi(TOKEN, "octo-org/app") as server:
        yield server


@pytest.fixture
def act_sync(
    act_cache: Path,  # noqa: F811
    tmp_path: Path,
    secret_values: set[str],
    age_id: AgeIdentity,
    github: GitHubApi,
) -> Callable[..., ActRun]:
    """Run the github-sync workflow with act; no value or token may reach act's output."""
    secret_values.add(TOKEN)

    def _run(inputs: dict[str, str]) -> ActRun:
        secret_file = tmp_path / "act-secrets.env"
        secrets = {"AGE_KEY": age_id.secret, "SYNC_TOKEN": TOKEN}
        secret_file.write_text("".join(f"{k}={json.dumps(v)}\n" for k, v in secrets.items()))
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SOPS_", "AGE_", "SSH_", "GITHUB_", "GH_", "RUNNER_", "PYTEST_"))
        }
        env["PATH"] = (
            f"{Path(tools.find_sops(tool_places(os.environ))).parent}{os.pathsep}{env['PATH']}"
        )
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
        all_inputs = {"repo": "octo-org/app", "github-api-url": github.url, **inputs}
        for key, value in all_inputs.items():
            args += ["--input", f"{key}={value}"]
        proc = subprocess.run(
            args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        secret_file.unlink()
        run = ActRun(proc.returncode, proc.stdout + proc.stderr)
        assert_no_secrets(run.output, secret_values)
        return run

    return _run


@pytest.mark.act
@pytest.mark.slow
def test_action_github_sync_creates_then_rerun_writes_nothing_then_check_finds_drift(
    act_sync: Callable[..., ActRun], encrypt: Callable[..., Path], github: GitHubApi
) -> None:
    """`command: github-sync` seals each value for the stand-in; a rerun writes nothing;
    `check: true` fails the job (exit 3) after an outside edit."""
    enc = encrypt(PLAIN)
    first = act_sync({"file": str(enc)})
    assert first.returncode == 0, first.output[-3000:]
    assert github.secret_values() == {
        "API_TOKEN": "tok_act_sync_1234abcd",
        "DB_PASSWORD": "act-sync-pw-5678",
    }
    out = first.outputs()
    assert out["changed"] == "true"
    assert out["added-keys"] == "API_TOKEN,DB_PASSWORD"

    writes = len(github.writes())
    again = act_sync({"file": str(enc)})
    assert again.returncode == 0, again.output[-3000:]
    assert len(github.writes()) == writes
    assert again.outputs()["changed"] == "false"

    github.outside_write("DB_PASSWORD", "edited-outside-0000")
    check = act_sync({"file": str(enc), "check": "true"})
    assert check.returncode != 0
    assert "edited outside sops-deploy" in check.output
    assert len(github.writes()) == writes
