"""`sops-deploy github-sync` end to end: the real CLI, real sops, and the local GitHub API
(tests/github_api.py, the one stand-in) that opens every sealed box it receives."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import github_contract
from tests.github_api import GitHubApi, Item
from tests.support import CliResult, assert_no_secrets

TOKEN = "ghp_testtoken_5f4e3d2c1b0a99887766"
REPO = "octo-org/app"
TLS = "-----BEGIN KEY-----\nline-two-of-the-key\n-----END KEY-----"
PLAIN = (
    "DATABASE_URL=postgres://app:Gh-Sync-Pw1@db/app\n"
    "API_TOKEN=tok_sync_1a2b3c4d\n"
    'TLS_KEY="-----BEGIN KEY-----\\nline-two-of-the-key\\n-----END KEY-----"\n'
    "PUBLIC_URL=https://app.example.com\n"
)
SCHEMA = "keys:\n  PUBLIC_URL: {type: url, secret: false}\n"


@pytest.fixture
def github(contract: github_contract.Contract) -> Iterator[GitHubApi]:
    """The local API; every request github-sync makes (and every 2xx answer the server
    gives) must be one GitHub's OpenAPI description allows, or the test fails."""
    contract.violations.clear()
    with GitHubApi(TOKEN, REPO, environments=("production",), contract=contract) as server:
        yield server
    assert contract.violations == []


@pytest.fixture
def sync(
    cli: Callable[..., CliResult],
    github: GitHubApi,
    secret_values: set[str],
    tmp_path: Path,
) -> Callable[..., CliResult]:
    """Run github-sync as on GitHub Actions; asserts that no value and no token appear in
    stdout, stderr, GITHUB_OUTPUT or the step summary."""
    secret_values.add(TOKEN)
    (tmp_path / "schema.yaml").write_text(SCHEMA)

    def _run(*args: str, env: dict[str, str] | None = None) -> CliResult:
        files = {n: tmp_path / n.lower() for n in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")}
        for f in files.values():
            f.write_text("")
        run_env = {
            "GH_TOKEN": TOKEN,
            "GITHUB_API_URL": github.url,
            "GITHUB_REPOSITORY": REPO,
            **{k: str(v) for k, v in files.items()},
            **(env or {}),
        }
        result = cli("github-sync", *args, env=run_env)
        written = "".join(f.read_text() for f in files.values())
        assert_no_secrets(written, secret_values)
        result.files = {k: v.read_text() for k, v in files.items()}  # type: ignore[attr-defined]
        return result

    return _run


def row(text: str, action: str, kind: str, name: str, reason: str = "") -> bool:
    """Whether the plan table has this row."""
    pattern = rf"^{action}\s+{kind}\s+{name}\s+{re.escape(reason)}"
    return re.search(pattern, text, re.M) is not None


def secret_puts(github: GitHubApi, since: int = 0) -> list[str]:
    return [p for m, p, _ in github.writes()[since:] if m == "PUT"]


def test_create_rerun_change_outside_edit_prune(
    sync: Callable[..., CliResult], encrypt: Callable[..., Path], github: GitHubApi
) -> None:
    """The whole life: create → unchanged rerun (no write) → one change (that secret only)
    → an outside edit found by --check (exit 3) → --prune deletes only what it created."""
    github.outside_write("OTHER_TEAM_TOKEN", "not-ours-123456")
    enc = encrypt(PLAIN)
    args = ("--file", str(enc), "--schema", "schema.yaml")

    first = sync(*args)
    assert first.returncode == 0, first.output
    assert github.secret_values() == {
        "DATABASE_URL": "postgres://app:Gh-Sync-Pw1@db/app",
        "API_TOKEN": "tok_sync_1a2b3c4d",
        "TLS_KEY": TLS,
        "OTHER_TEAM_TOKEN": "not-ours-123456",
    }
    variables = github.variable_values()
    assert variables["PUBLIC_URL"] == "https://app.example.com"
    state = json.loads(variables["SOPS_DEPLOY_SYNC"])
    assert set(state["secrets"]) == {"DATABASE_URL", "API_TOKEN", "TLS_KEY"}
    for value in ("Gh-Sync-Pw1", "tok_sync_1a2b3c4d", "line-two-of-the-key"):
        assert value not in variables["SOPS_DEPLOY_SYNC"]
    assert sorted(secret_puts(github)) == [
        f"/repos/{REPO}/actions/secrets/{n}" for n in ("API_TOKEN", "DATABASE_URL", "TLS_KEY")
    ]
    assert [s for m, _, s in github.writes() if m == "PUT"] == [201, 201, 201]
    assert row(first.stdout, "create", "secret", "API_TOKEN", "missing on GitHub")
    outputs = first.files["GITHUB_OUTPUT"]  # type: ignore[attr-defined]
    assert "changed<<" in outputs
    assert "\ntrue\n" in outputs

    writes = len(github.writes())
    again = sync(*args)
    assert again.returncode == 0, again.output
    assert len(github.writes()) == writes, github.writes()[writes:]
    assert "4 name(s): 4 unchanged; 0 write request(s)" in again.stdout

    encrypt(PLAIN.replace("tok_sync_1a2b3c4d", "tok_sync_rotated_77"), name=enc.name)
    changed = sync(*args)
    assert changed.returncode == 0, changed.output
    new_writes = github.writes()[writes:]
    assert [(m, p, s) for m, p, s in new_writes if "SOPS_DEPLOY_SYNC" not in p] == [
        ("PUT", f"/repos/{REPO}/actions/secrets/API_TOKEN", 204)
    ]
    assert [m for m, p, _ in new_writes if "SOPS_DEPLOY_SYNC" in p] == ["PATCH"]
    assert github.secret_values()["API_TOKEN"] == "tok_sync_rotated_77"

    github.outside_write("DATABASE_URL", "edited-in-the-ui-999")
    writes = len(github.writes())
    check = sync(*args, "--check")
    assert check.returncode == 3, check.output
    assert row(check.stdout, "update", "secret", "DATABASE_URL", "edited outside sops-deploy")
    assert row(check.stdout, "unchanged", "secret", "TLS_KEY")
    assert len(github.writes()) == writes

    encrypt(PLAIN.replace("API_TOKEN=tok_sync_1a2b3c4d\n", ""), name=enc.name)
    pruned = sync(*args, "--prune")
    assert pruned.returncode == 0, pruned.output
    assert github.secret_values() == {
        "DATABASE_URL": "postgres://app:Gh-Sync-Pw1@db/app",
        "TLS_KEY": TLS,
        "OTHER_TEAM_TOKEN": "not-ours-123456",
    }
    assert ("DELETE", f"/repos/{REPO}/actions/secrets/API_TOKEN", 204) in github.writes()
    assert sync(*args, "--check").returncode == 0


def test_dry_run_prints_the_plan_and_writes_nothing(
    sync: Callable[..., CliResult], encrypt: Callable[..., Path], github: GitHubApi
) -> None:
    """--dry-run lists what would be created, by name, and sends no write request."""
    enc = encrypt(PLAIN)
    result = sync("--file", str(enc), "--schema", "schema.yaml", "--dry-run")
    assert result.returncode == 0, result.output
    assert row(result.stdout, "create", "variable", "PUBLIC_URL")
    assert github.writes() == []
    summary = result.files["GITHUB_STEP_SUMMARY"]  # type: ignore[attr-defined]
    assert "| create | secret | `API_TOKEN` | missing on GitHub |" in summary


@pytest.mark.parametrize(
    ("extra", "files"),
    [
        pytest.param(("--public-keys", "PUBLIC_URL"), {}, id="public-keys-flag"),
        pytest.param(
            ("--schema", ".env.example"),
            {".env.example": "DATABASE_URL=\nAPI_TOKEN=\nTLS_KEY=\nPUBLIC_URL=  # public\n"},
            id="env-example-public-comment",
        ),
    ],
)
def test_keys_public_by_the_masking_policy_become_variables(
    sync: Callable[..., CliResult],
    encrypt: Callable[..., Path],
    github: GitHubApi,
    extra: tuple[str, ...],
    files: dict[str, str],
) -> None:
    """Every way the masking policy makes a key public also makes it a variable, not a secret."""
    enc = encrypt(PLAIN)
    for name, text in files.items():
        (enc.parent / name).write_text(text)
    result = sync("--file", str(enc), *extra, "--dry-run")
    assert result.returncode == 0, result.output
    assert row(result.stdout, "create", "variable", "PUBLIC_URL")
    assert row(result.stdout, "create", "secret", "API_TOKEN", "missing on GitHub")
    assert not row(result.stdout, "create", "secret", "PUBLIC_URL")
    assert github.writes() == []


def test_environment_and_dependabot_scopes_keys_and_prefix(
    sync: Callable[..., CliResult], encrypt: Callable[..., Path], github: GitHubApi
) -> None:
    """--github-environment writes that environment's secrets and variables; --dependabot
    writes every chosen key as a Dependabot secret; --keys and --prefix pick and name."""
    enc = encrypt(PLAIN)
    env = sync(
        "--file",
        str(enc),
        "--schema",
        "schema.yaml",
        "--github-environment",
        "production",
        "--keys",
        "API_*,PUBLIC_URL",
        "--prefix",
        "APP_",
    )
    assert env.returncode == 0, env.output
    assert github.secret_values("environment", "production") == {
        "APP_API_TOKEN": "tok_sync_1a2b3c4d"
    }
    assert github.variable_values("environment", "production")["APP_PUBLIC_URL"] == (
        "https://app.example.com"
    )
    assert github.secret_values() == {}
    bot = sync(
        "--file",
        str(enc),
        "--schema",
        "schema.yaml",
        "--dependabot",
        "--keys",
        "TLS_KEY,PUBLIC_URL",
    )
    assert bot.returncode == 0, bot.output
    assert github.secret_values("dependabot") == {
        "TLS_KEY": TLS,
        "PUBLIC_URL": "https://app.example.com",
    }
    assert "SOPS_DEPLOY_SYNC_DEPENDABOT" in github.variable_values()
    writes = len(github.writes())
    assert (
        sync(
            "--file",
            str(enc),
            "--schema",
            "schema.yaml",
            "--dependabot",
            "--keys",
            "TLS_KEY,PUBLIC_URL",
        ).returncode
        == 0
    )
    assert len(github.writes()) == writes


def test_pagination_reads_every_page(
    sync: Callable[..., CliResult], encrypt: Callable[..., Path], github: GitHubApi
) -> None:
    """With 150 secrets and 40 variables already there, every page is read (Link: next),
    so a name on a later page is updated, not created twice."""
    for i in range(150):
        github.outside_write(f"EXISTING_{i:03d}", f"existing-{i}")
    for i in range(40):
        github.scope().variables[f"VAR_{i:02d}"] = Item(f"v{i}", "2025-01-01T00:00:00Z", "x")
    github.outside_write("ZZ_LAST", "old-value-1234")
    enc = encrypt("ZZ_LAST=new-value-5678\nVAR_39_NEW=x1234567\n")
    result = sync("--file", str(enc))
    assert result.returncode == 0, result.output
    assert row(result.stdout, "update", "secret", "ZZ_LAST", "not synced by sops-deploy before")
    assert github.secret_values()["ZZ_LAST"] == "new-value-5678"
    pages = [p for m, p, _ in github.log if m == "GET"]
    assert any("secrets?per_page=100&page=2" in p for p in pages), pages
    assert any("variables?per_page=30&page=2" in p for p in pages), pages


@pytest.mark.parametrize(
    ("setup", "env", "args", "expected"),
    [
        pytest.param(
            None, {"GH_TOKEN": "ghp_wrong_token_000000"}, (), "rejected the token (401)", id="401"
        ),
        pytest.param(
            "read_only",
            {},
            (),
            "the default GITHUB_TOKEN of a workflow cannot write secrets",
            id="403-default-token",
        ),
        pytest.param(
            None, {}, ("--github-environment", "staging"), "not found (404)", id="404-environment"
        ),
        pytest.param(None, {}, ("--repo", "octo-org/nope"), "not found (404)", id="404-repo"),
        pytest.param("throttle-long", {}, (), "rate limit", id="429-retry-after-too-long"),
        pytest.param(
            None, {"GH_TOKEN": "", "GITHUB_TOKEN": ""}, (), "no GitHub token", id="no-token"
        ),
        pytest.param(
            None, {"GITHUB_API_URL": "http://example.com"}, (), "plain http", id="http-api"
        ),
    ],
)
def test_errors_say_what_to_fix(
    sync: Callable[..., CliResult],
    encrypt: Callable[..., Path],
    github: GitHubApi,
    setup: str | None,
    env: dict[str, str],
    args: tuple[str, ...],
    expected: str,
) -> None:
    """Each GitHub failure is one clear error (exit 1, or 2 for bad setup) with a fix."""
    enc = encrypt("API_TOKEN=tok_err_11223344\n")
    if setup == "read_only":
        github.read_only = True
    elif setup == "throttle-long":
        github.throttle(5, 3600)
    result = sync("--file", str(enc), *args, env=env)
    assert result.returncode in (1, 2), result.output
    assert expected in result.output
    assert "fix:" in result.output
    assert github.secret_values() == {}
    if setup == "read_only":
        assert "GH_TOKEN: ${{ secrets.SYNC_TOKEN }}" in result.output


def test_rate_limit_with_a_short_retry_after_is_waited_out(
    sync: Callable[..., CliResult], encrypt: Callable[..., Path], github: GitHubApi
) -> None:
    """429 with Retry-After: 0 is retried; the sync then completes."""
    enc = encrypt("API_TOKEN=tok_retry_55667788\n")
    github.throttle(2, 0)
    result = sync("--file", str(enc))
    assert result.returncode == 0, result.output
    assert github.secret_values() == {"API_TOKEN": "tok_retry_55667788"}
    assert [s for _, _, s in github.log[:2]] == [429, 429]


@pytest.mark.parametrize(
    ("plain", "fmt", "key"),
    [
        pytest.param(
            "GITHUB_DEPLOY_KEY=value-gh-1234\n", "dotenv", "GITHUB_DEPLOY_KEY", id="github-prefix"
        ),
        pytest.param("my-key: value-dash-1234\n", "yaml", "my-key", id="dash"),
    ],
)
def test_invalid_github_names_are_refused_before_any_request(
    sync: Callable[..., CliResult],
    encrypt: Callable[..., Path],
    github: GitHubApi,
    secret_values: set[str],
    plain: str,
    fmt: str,
    key: str,
) -> None:
    """A name GitHub would refuse: exit 4 naming the key and the fix; GitHub never called."""
    secret_values.update({"value-gh-1234", "value-dash-1234"})
    enc = encrypt(plain, fmt=fmt, name=f"bad.{fmt}")
    result = sync("--file", str(enc))
    assert result.returncode == 4, result.output
    assert key in result.output
    assert "--prefix" in result.output or "rename" in result.output
    assert github.log == []


def test_config_file_github_section(
    sync: Callable[..., CliResult], encrypt: Callable[..., Path], github: GitHubApi, tmp_path: Path
) -> None:
    """An environment's `github:` section gives repo, environment, keys and prefix."""
    enc = encrypt(PLAIN, name="prod.env.encrypted")
    (tmp_path / "sops-deploy.yaml").write_text(
        "version: 1\nenvironments:\n  prod:\n"
        f"    files: [{enc.name}]\n"
        "    github:\n"
        f"      repo: {REPO}\n"
        "      environment: production\n"
        "      keys: [DATABASE_URL]\n"
        "      prefix: PROD_\n"
    )
    result = sync("--config", "sops-deploy.yaml", "--env", "prod", env={"GITHUB_REPOSITORY": ""})
    assert result.returncode == 0, result.output
    assert github.secret_values("environment", "production") == {
        "PROD_DATABASE_URL": "postgres://app:Gh-Sync-Pw1@db/app"
    }


def test_token_is_never_on_the_command_line() -> None:
    """There is no --token flag: the token comes from the environment only."""
    proc = subprocess.run(
        [sys.executable, "-m", "sops_deploy", "github-sync", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--token" not in proc.stdout
    assert "GH_TOKEN" in proc.stdout


def test_config_file_github_section_errors_name_the_line(tmp_path: Path) -> None:
    """An unknown key in `github:` is a usage error naming the file line; a github-only
    environment needs no hosts."""
    from sops_deploy.errors import UsageError
    from sops_deploy.inputs import configfile

    path = tmp_path / "sops-deploy.yaml"
    path.write_text("environments:\n  ci:\n    github:\n      repo: o/r\n      prefx: A_\n")
    with pytest.raises(UsageError) as err:
        configfile.load(str(path))
    assert err.value.line == 5
    assert "unknown key `prefx`" in err.value.message
    assert "prefix" in err.value.hint
    path.write_text("environments:\n  ci:\n    github:\n      repo: o/r\n      prune: true\n")
    values = configfile.values(str(path), "ci")
    assert values["repo"] == "o/r"
    assert values["prune"] is True
