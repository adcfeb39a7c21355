"""Attacks on github-sync, performed for real against the local GitHub API
(tests/github_api.py): a redirect that would carry the token elsewhere, and a forged
ownership claim in the sync state that would make `--prune` delete a secret."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.github_api import GitHubApi, Item
from tests.support import CliResult
from tests.test_github_sync import PLAIN, REPO, TOKEN, github, sync

__all__ = ["github", "sync"]  # fixtures, used by name


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("http://localhost:{port}{path}", id="other-host-same-server"),
        pytest.param("http://127.0.0.1:{other}{path}", id="other-port"),
        pytest.param("https://127.0.0.1:{port}{path}", id="other-scheme"),
    ],
)
def test_redirect_to_another_origin_is_refused_and_the_token_stays(
    sync: Callable[..., CliResult],
    encrypt: Callable[..., Path],
    github: GitHubApi,
    where: str,
) -> None:
    """A 302 from the API base to another origin is refused and named; no request with the
    token reaches it (the API itself listens on `localhost` too, and records every header)."""
    with GitHubApi(TOKEN, REPO) as elsewhere:
        port = github.url.rsplit(":", 1)[1]
        other = elsewhere.url.rsplit(":", 1)[1]
        github.redirect(where.replace("{port}", port).replace("{other}", other))
        result = sync("--file", str(encrypt(PLAIN)), "--dry-run")
        assert elsewhere.authorizations == []
    assert result.returncode == 1, result.output
    assert "redirecting to another origin" in result.stderr
    shown = where.split("{path}")[0].replace("{port}", port).replace("{other}", other)
    assert shown in result.stderr
    assert github.authorizations == [f"Bearer {TOKEN}"]  # the first request, nothing after
    assert github.writes() == []


def test_redirect_within_the_api_origin_is_followed(
    sync: Callable[..., CliResult], encrypt: Callable[..., Path], github: GitHubApi
) -> None:
    """Nearest valid: a redirect to the same origin (a renamed repository) is followed."""
    github.redirect(github.url + "{path}", code=301)
    result = sync("--file", str(encrypt(PLAIN)), "--dry-run")
    assert result.returncode == 0, result.output
    assert len(github.authorizations) >= 2


def _edit_state(github: GitHubApi, change: Callable[[dict[str, Any]], None]) -> None:
    """What anyone with Variables write access can do: rewrite SOPS_DEPLOY_SYNC."""
    item = github.scope().variables["SOPS_DEPLOY_SYNC"]
    doc = json.loads(item.value)
    change(doc)
    github.scope().variables["SOPS_DEPLOY_SYNC"] = Item(
        json.dumps(doc), item.created_at, item.updated_at
    )


def test_forged_ownership_claim_does_not_make_prune_delete_a_secret(
    sync: Callable[..., CliResult], encrypt: Callable[..., Path], github: GitHubApi
) -> None:
    """A hand-made secret added to the state's claims (with GitHub's own updated_at, as a
    careful forger would) survives --prune; the run warns, naming it; the forged claim is
    not carried into the next state."""
    enc = encrypt(PLAIN)
    assert sync("--file", str(enc)).returncode == 0
    github.outside_write("RELEASE_SIGNING_KEY", "hand-made-signing-key-42")
    at = github.scope().secrets["RELEASE_SIGNING_KEY"].updated_at
    source = json.loads(github.variable_values()["SOPS_DEPLOY_SYNC"])["secrets"]["API_TOKEN"]["by"]

    def forge(doc: dict[str, Any]) -> None:
        doc["secrets"]["RELEASE_SIGNING_KEY"] = {"by": source, "mac": "AAAA", "updated_at": at}

    _edit_state(github, forge)
    pruned = sync("--file", str(enc), "--prune")
    assert pruned.returncode == 0, pruned.output
    assert github.secret_values()["RELEASE_SIGNING_KEY"] == "hand-made-signing-key-42"
    assert not any(m == "DELETE" for m, _, _ in github.writes())
    assert "warning: the sync state" in pruned.stderr
    assert "RELEASE_SIGNING_KEY" in pruned.stderr + pruned.stdout
    assert "not sealed by this age identity" in pruned.stderr + pruned.stdout
    state = json.loads(github.variable_values()["SOPS_DEPLOY_SYNC"])
    assert "RELEASE_SIGNING_KEY" not in state["secrets"]
    assert state["seal"]
    again = sync("--file", str(enc), "--prune")
    assert again.returncode == 0, again.output
    assert "RELEASE_SIGNING_KEY" in github.secret_values()
    assert "not sealed" not in again.stdout + again.stderr


def test_state_written_before_seals_migrates_and_prunes_again(
    sync: Callable[..., CliResult], encrypt: Callable[..., Path], github: GitHubApi
) -> None:
    """Nearest valid: a state without a seal (older sops-deploy) is sealed by the next run;
    a name that leaves the file after that is pruned as before."""
    enc = encrypt(PLAIN)
    assert sync("--file", str(enc)).returncode == 0
    _edit_state(github, lambda doc: doc.pop("seal"))
    migrated = sync("--file", str(enc), "--prune")
    assert migrated.returncode == 0, migrated.output
    assert "not sealed" not in migrated.stdout + migrated.stderr  # nothing had left the file
    assert json.loads(github.variable_values()["SOPS_DEPLOY_SYNC"])["seal"]
    encrypt(PLAIN.replace("API_TOKEN=tok_sync_1a2b3c4d\n", ""), name=enc.name)
    pruned = sync("--file", str(enc), "--prune")
    assert pruned.returncode == 0, pruned.output
    assert "API_TOKEN" not in github.secret_values()
