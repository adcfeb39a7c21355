"""Attacks on github-sync, performed for real against the local GitHub API
(tests/github_api.py): a redirect that would carry the token elsewhere, and a forged
ownership claim in the sync state that would make `--prune` delete a secret."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.github_api import GitHubApi
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
