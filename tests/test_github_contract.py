"""The checker of GitHub's contract (tests/github_contract.py) refuses what GitHub's own
OpenAPI description does not allow, and accepts github-sync's real requests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import github_contract
from tests.github_api import GitHubApi
from tests.support import CliResult

REPO_PATH = "/repos/octo-org/app/actions/secrets"
KEY = "3380204578043523366"
SEALED = "c2VjcmV0dmFsdWVzZWFsZWQ="


@pytest.fixture(scope="module")
def contract() -> github_contract.Contract:
    return github_contract.load()


def violations(contract: github_contract.Contract, *request: object) -> list[str]:
    contract.violations.clear()
    contract.check(*request)  # type: ignore[arg-type]
    return list(contract.violations)


def test_the_requests_github_sync_makes_are_allowed(contract: github_contract.Contract) -> None:
    put = json.dumps({"encrypted_value": SEALED, "key_id": KEY}).encode()
    assert violations(contract, "PUT", f"{REPO_PATH}/API_TOKEN", {}, put, 201, {}) == []
    assert violations(contract, "PUT", f"{REPO_PATH}/API_TOKEN", {}, put, 204, None) == []
    listing = {"total_count": 1, "secrets": [
        {"name": "A", "created_at": "2025-01-02T03:04:05Z", "updated_at": "2025-01-02T03:04:05Z"}
    ]}  # fmt: skip
    query = {"per_page": ["100"], "page": ["2"]}
    assert violations(contract, "GET", REPO_PATH, query, b"", 200, listing) == []
    key = {"key_id": KEY, "key": "AAAA"}
    assert violations(contract, "GET", f"{REPO_PATH}/public-key", {}, b"", 200, key) == []
    env = "/repos/octo-org/app/environments/production/variables"
    body = json.dumps({"name": "PUBLIC_URL", "value": "https://x"}).encode()
    assert violations(contract, "POST", env, {}, body, 201, {}) == []


def test_what_the_description_does_not_allow_is_a_violation(
    contract: github_contract.Contract,
) -> None:
    no_key = json.dumps({"encrypted_value": SEALED}).encode()
    found = violations(contract, "PUT", f"{REPO_PATH}/API_TOKEN", {}, no_key, 201, {})
    assert any("'key_id' is a required property" in v for v in found), found
    extra = violations(contract, "GET", REPO_PATH, {"perpage": ["100"]}, b"", 200, None)
    assert any("query parameter perpage is not declared" in v for v in extra), extra
    typed = violations(contract, "GET", REPO_PATH, {"per_page": ["many"]}, b"", 200, None)
    assert any("is not an integer" in v for v in typed), typed
    assert violations(contract, "GET", "/repos/octo-org/app/actions/sekrets", {}, b"", 200, {})
    wrong = violations(contract, "POST", f"{REPO_PATH}/API_TOKEN", {}, b"{}", 201, {})
    assert any("has no POST operation" in v for v in wrong), wrong
    bodyless = violations(contract, "DELETE", f"{REPO_PATH}/API_TOKEN", {}, b'{"x": 1}', 204, None)
    assert any("a body where the operation takes none" in v for v in bodyless), bodyless
    shape = violations(contract, "GET", f"{REPO_PATH}/public-key", {}, b"", 200, {"key": "AAAA"})
    assert any("answer 200" in v and "key_id" in v for v in shape), shape
    status = violations(contract, "GET", f"{REPO_PATH}/public-key", {}, b"", 202, {})
    assert any("answer 202 is not declared" in v for v in status), status


def test_a_github_sync_run_is_checked_request_by_request(
    cli: Callable[..., CliResult],
    encrypt: Callable[..., Path],
    contract: github_contract.Contract,
    secret_values: set[str],
) -> None:
    token = "ghp_contract_token_0a1b2c3d4e5f"
    secret_values.add(token)
    enc = encrypt("API_TOKEN=tok-contract-77aa\nDATABASE_URL=postgres://c:Pw-Contract1@db/a\n")
    contract.violations.clear()
    before = contract.checked
    with GitHubApi(token, "octo-org/app", contract=contract) as server:
        env = {"GH_TOKEN": token, "GITHUB_API_URL": server.url, "GITHUB_REPOSITORY": "octo-org/app"}
        result = cli("github-sync", "--file", str(enc), env=env)
        assert result.returncode == 0, result.output
        requests = len(server.log)
    assert contract.checked - before == requests >= 3
    assert contract.violations == []
