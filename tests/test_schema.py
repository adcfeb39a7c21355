"""Schema: --required, schema.yaml and .env.example; every problem at once, exit 4."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sops_deploy.envfile import Entry, Secrets
from sops_deploy.errors import UsageError
from sops_deploy.plan import schema
from tests.support import CliResult

Cli = Callable[..., CliResult]


def secrets_of(values: dict[str, str]) -> Secrets:
    return {k: Entry(k, v, "s.env", i + 1) for i, (k, v) in enumerate(values.items())}


def rules_for(tmp_path: Path, body: str) -> schema.Schema:
    path = tmp_path / "schema.yaml"
    path.write_text(body)
    return schema.load(str(path))


@pytest.mark.parametrize(
    ("spec", "good", "bad"),
    [
        pytest.param("{type: int}", "-42", "4.2", id="int"),
        pytest.param("{type: float}", "4.25", "four", id="float"),
        pytest.param("{type: bool}", "Yes", "maybe", id="bool"),
        pytest.param("{type: url}", "postgres://u@db:5432/app", "db:5432", id="url"),
        pytest.param("{type: email}", "ops@example.com", "ops@localhost", id="email"),
        pytest.param("{type: port}", "5432", "70000", id="port"),
        pytest.param("{type: enum, choices: [debug, info]}", "info", "trace", id="enum"),
        pytest.param("{pattern: 'tok_[a-z]+'}", "tok_live", "tok_LIVE", id="pattern"),
        pytest.param("{min-length: 8}", "12345678", "1234567", id="min-length"),
        pytest.param("port", "22", "0", id="shorthand-type"),
    ],
)
def test_value_rules(tmp_path: Path, spec: str, good: str, bad: str) -> None:
    """Each type and constraint accepts a good value and rejects a bad one by key."""
    sch = rules_for(tmp_path, f"keys:\n  K: {spec}\n")
    assert schema.check_schema(secrets_of({"K": good}), sch, "s.env", set()) == []
    problems = schema.check_schema(secrets_of({"K": bad}), sch, "s.env", set())
    assert [(p.key, p.line, p.severity) for p in problems] == [("K", 1, "error")]
    assert bad not in problems[0].message


def test_required_default_and_optional_and_allow_empty(tmp_path: Path) -> None:
    """Keys are required and non-empty by default; required: false and allow-empty relax it."""
    sch = rules_for(
        tmp_path,
        "keys:\n  NEED:\n  MAYBE: {required: false}\n  BLANK: {allow-empty: true}\n  FULL: {}\n",
    )
    problems = schema.check_schema(secrets_of({"BLANK": "", "FULL": ""}), sch, "s.env", set())
    assert [(p.key, p.rule) for p in problems] == [
        ("NEED", "required-missing"),
        ("FULL", "empty-not-allowed"),
    ]
    assert "schema.yaml:2" in problems[0].fix


def test_allow_other_keys_false_names_extra_keys(tmp_path: Path) -> None:
    """allow-other-keys: false makes every key not in the schema an error."""
    sch = rules_for(tmp_path, "allow-other-keys: false\nkeys:\n  A:\n")
    problems = schema.check_schema(secrets_of({"A": "x", "EXTRA": "y"}), sch, "s.env", set())
    assert [(p.key, p.rule, p.line) for p in problems] == [("EXTRA", "unexpected-key", 2)]


@pytest.mark.parametrize(
    ("body", "line"),
    [
        pytest.param("keys:\n  A: {type: uuid}\n", 2, id="unknown-type"),
        pytest.param("keys:\n  A:\n  B: {colour: red}\n", 3, id="unknown-option"),
        pytest.param("keys:\n  A: {type: enum}\n", 2, id="enum-without-choices"),
        pytest.param("keys:\n  A: {pattern: '(('}\n", 2, id="bad-regex"),
        pytest.param("keys:\n  A: {required: perhaps}\n", 2, id="bad-bool"),
        pytest.param("strict: true\n", 1, id="unknown-setting"),
        pytest.param("keys:\n  A: [1\n", 3, id="bad-yaml"),
        pytest.param("keys:\n  bad-key:\n", 2, id="bad-key-name"),
    ],
)
def test_invalid_schema_is_usage_error_with_line(tmp_path: Path, body: str, line: int) -> None:
    """A wrong schema file raises UsageError (exit 2) naming the schema file and line."""
    path = tmp_path / "schema.yaml"
    path.write_text(body)
    with pytest.raises(UsageError) as info:
        schema.load(str(path))
    assert info.value.exit_code == 2
    assert info.value.line == line
    assert f"{path}:{line}" in info.value.message


def test_env_example_as_schema(tmp_path: Path) -> None:
    """Every key of a .env.example is required and non-empty unless its comment says optional."""
    example = tmp_path / ".env.example"
    example.write_text(
        "# database\nDATABASE_URL=postgres://...\nSENTRY_DSN= # optional\n"
        "# optional: only in prod\nCDN_URL=\nAPI_TOKEN=\n"
    )
    sch = schema.load(str(example))
    assert {k: r.required for k, r in sch.rules.items()} == {
        "DATABASE_URL": True,
        "SENTRY_DSN": False,
        "CDN_URL": False,
        "API_TOKEN": True,
    }
    values = {"API_TOKEN": "", "CDN_URL": ""}
    problems = schema.check_schema(secrets_of(values), sch, "s.env", set())
    assert [(p.key, p.rule) for p in problems] == [
        ("DATABASE_URL", "required-missing"),
        ("API_TOKEN", "empty-not-allowed"),
    ]


# --- through the CLI --------------------------------------------------------------------


def test_schema_problems_all_reported_and_nothing_written(
    cli: Cli,
    encrypt: Callable[..., Path],
    tmp_path: Path,
    target_args: list[str],
    remote_dir: Path,
) -> None:
    """deploy --schema: every violation listed at once, exit 4, the server untouched."""
    sch = tmp_path / "schema.yaml"
    sch.write_text(
        "allow-other-keys: false\nkeys:\n  DATABASE_URL: {type: url}\n  PORT: {type: port}\n"
        "  LOG_LEVEL: {type: enum, choices: [debug, info]}\n  SMTP_PASSWORD:\n"
    )
    enc = encrypt("DATABASE_URL=not-a-url-value\nPORT=99999\nLOG_LEVEL=chatty\nSTRAY=stray-1\n")
    result = cli("deploy", "--file", str(enc), "--schema", str(sch), *target_args)
    assert result.returncode == 4, result.output
    for needle in (
        f"{enc}:1: DATABASE_URL: [type]",
        f"{enc}:2: PORT: [type]",
        f"{enc}:3: LOG_LEVEL: [type]",
        "SMTP_PASSWORD: [required-missing]",
        f"{enc}:4: STRAY: [unexpected-key]",
    ):
        assert needle in result.stderr
    assert not (remote_dir / ".env").exists()


def test_invalid_schema_exits_2_naming_line(
    cli: Cli, encrypt: Callable[..., Path], tmp_path: Path
) -> None:
    """A schema with an unknown type stops validate with exit 2 and the schema's file:line."""
    sch = tmp_path / "schema.yaml"
    sch.write_text("keys:\n  A:\n  B: {type: colour}\n")
    result = cli("validate", "--file", str(encrypt("A=value-a1\n")), "--schema", str(sch))
    assert result.returncode == 2
    assert f"{sch}:3" in result.stderr


def test_empty_value_warning_is_not_doubled_by_schema_error(
    cli: Cli, encrypt: Callable[..., Path], tmp_path: Path
) -> None:
    """An empty value is a warning alone, and only an error when the schema forbids it."""
    enc = encrypt("A=value-a1\nB=\n")
    alone = cli("validate", "--file", str(enc))
    assert alone.returncode == 0
    assert "[empty-value]" in alone.stderr
    sch = tmp_path / "schema.yaml"
    sch.write_text("keys:\n  B:\n")
    checked = cli("validate", "--file", str(enc), "--schema", str(sch))
    assert checked.returncode == 4
    assert "[empty-not-allowed]" in checked.stderr
    assert "[empty-value]" not in checked.stderr


def test_env_example_schema_through_cli(
    cli: Cli, encrypt: Callable[..., Path], tmp_path: Path
) -> None:
    """validate --schema .env.example: a missing required key fails, an optional one does not."""
    example = tmp_path / ".env.example"
    example.write_text("API_TOKEN=\nSENTRY_DSN= # optional\n")
    ok = cli(
        "validate", "--file", str(encrypt("API_TOKEN=tok-value-1\n")), "--schema", str(example)
    )
    assert ok.returncode == 0, ok.output
    missing = encrypt("OTHER=other-value-1\n", name="m.env")
    bad = cli("validate", "--file", str(missing), "--schema", str(example))
    assert bad.returncode == 4
    assert "API_TOKEN: [required-missing]" in bad.stderr
    assert "SENTRY_DSN" not in bad.stderr
