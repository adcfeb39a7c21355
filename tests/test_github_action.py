"""`command: github-sync` of the composite action, run by real `act` against the local
GitHub API stand-in (tests/github_api.py) on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.github_api import GitHubApi
from tests.support import AgeIdentity, assert_no_secrets
from tests.test_action import ActRun, act_cache, run_act  # noqa: F401 (act_cache: a fixture)

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
        secrets = {"AGE_KEY": age_id.secret, "SYNC_TOKEN": TOKEN}
        all_inputs = {"repo": "octo-org/app", "github-api-url": github.url, **inputs}
        run = run_act(WORKFLOW, act_cache, tmp_path, all_inputs, secrets)
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
