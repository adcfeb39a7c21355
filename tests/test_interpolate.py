"""`${NAME}` naming a key of the same file means what compose-go makes of it (issue 23.2).

Every expectation is checked against the real compose-go reader (tests/composeparse) and,
where they agree, python-dotenv's default `dotenv_values`. The reader's lookup environment
holds canaries for X, HOME and A only; these cases avoid those names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values
from hypothesis import given, settings
from hypothesis import strategies as st

from sops_deploy import envfile
from sops_deploy.envfile import structured
from sops_deploy.inputs.settings import Settings
from sops_deploy.plan import build
from sops_deploy.sops import runner as sops
from tests import readers
from tests.support import AgeIdentity, CliResult
from tests.test_fidelity import PROPERTY

Read = Callable[[Path], dict[str, object]]


@pytest.fixture(scope="module")
def compose_go() -> Iterator[Read]:
    with readers.go_reader("composeparse") as read:
        yield read


def _expand(text: str, mode: str = "auto") -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    entries, problems = envfile.parse_dotenv(text, "f.env")
    assert problems == []
    out, found, _ = envfile.expand(entries, mode)
    return {e.key: e.value for e in out}, [(p.key or "", p.rule, p.severity) for p in found]


MATTERMOST = """\
DOMAIN=mm.example.com
POSTGRES_USER=mmuser
POSTGRES_PASSWORD=mmuser_password
POSTGRES_DB=mattermost
MM_SQLSETTINGS_DATASOURCE=postgres://${POSTGRES_USER}:${POSTGRES_PASSWORD}@postgres:5432/${POSTGRES_DB}?sslmode=disable&connect_timeout=10
MM_SERVICESETTINGS_SITEURL=https://${DOMAIN}
"""
MONICA = 'APP_NAME=Monica\nMAIL_FROM_NAME="${APP_NAME}"\n'

CASES = [
    pytest.param(MATTERMOST, id="mattermost"),
    pytest.param(MONICA, id="monica"),
    pytest.param("B=b\nC=$B-${B}\n", id="named-and-braced"),
    pytest.param("B=b\nC='${B} $B'\n", id="single-quotes-literal"),
    pytest.param('B=b\nC="${B}"\nD=${C}x\n', id="chain"),
    pytest.param("B=b\nC=${B}$$B\n", id="dollar-dollar-in-expanded"),
    pytest.param("B=\nC=${B:-d}|${B-d}|${B:+p}|${B+p}\n", id="empty-defaults"),
    pytest.param("B=b\nC=${B:-d}|${B-d}|${B:+p}|${B+p}|${B:?e}|${B?e}\n", id="set-forms"),
    pytest.param("B=b\nC=${B:-${B}x}y\n", id="nested-default"),
    pytest.param("B=b\nC=${B}\nB=c\nD=${B}\n", id="redefined-latest-wins"),
]


@pytest.mark.parametrize("text", CASES)
def test_expansion_equals_compose_go(text: str, compose_go: Read, tmp_path: Path) -> None:
    """Each value expanded here is the value compose-go reads from the same file."""
    path = tmp_path / ".env"
    path.write_text(text)
    answer = compose_go(path)
    assert "error" not in answer
    entries, _ = envfile.parse_dotenv(text, "f.env")
    out, found, _ = envfile.expand(entries, "auto")
    merged = {e.key: e.value for e in out}
    assert merged == answer["env"]
    assert [p for p in found if p.severity == "error"] == []


@pytest.mark.parametrize("text", [MATTERMOST, MONICA, 'B=b\nC="x${B}y"\nD=${B:-d}\n'])
def test_python_dotenv_agrees_on_braced_references(text: str, tmp_path: Path) -> None:
    """python-dotenv's default (interpolate=True) reads ${NAME} the same way."""
    path = tmp_path / ".env"
    path.write_text(text)
    assert _expand(text)[0] == dict(dotenv_values(path))


def test_undefined_reference_is_a_warning_and_stays_literal() -> None:
    """A name the file does not define above (or defines later) stays as written; warned."""
    got, problems = _expand("C=${LATER}/${B}\nB=b\nD=${NOPE:-d}\n")
    assert got == {"C": "${LATER}/${B}", "B": "b", "D": "${NOPE:-d}"}
    assert problems == [
        ("C", "undefined-reference", "warning"),
        ("D", "undefined-reference", "warning"),
    ]


def test_undefined_beside_a_defined_reference_stays_literal_alone() -> None:
    """In a value that is expanded, only the undefined reference stays as written."""
    got, problems = _expand("B=b\nC=${B}:${PORT}\n")
    assert got["C"] == "b:${PORT}"
    assert problems == [("C", "undefined-reference", "warning")]


def test_value_without_reference_keeps_every_dollar() -> None:
    """auto: no reference to the file's keys, no change (`$$` stays two, `$1` stays)."""
    got, problems = _expand("P=pa$$w$1rd\nQ=${\n")
    assert got == {"P": "pa$$w$1rd", "Q": "${"}
    assert problems == []


def test_off_keeps_every_dollar() -> None:
    got, problems = _expand(MATTERMOST, "off")
    assert got["MM_SERVICESETTINGS_SITEURL"] == "https://${DOMAIN}"
    assert problems == []


def test_on_reads_every_value_as_compose_and_refuses_an_undefined_name() -> None:
    """on: `$$` is one `$` everywhere; an undefined name without a default is an error;
    the nearest valid input (a default) is not."""
    got, problems = _expand("P=pa$$w\nC=${NOPE}\n", "on")
    assert got["P"] == "pa$w"
    assert problems == [("C", "undefined-reference", "error")]
    got, problems = _expand("P=pa$$w\nC=${NOPE:-d}\n", "on")
    assert got == {"P": "pa$w", "C": "d"}
    assert problems == []


def test_a_value_compose_refuses_is_named() -> None:
    """auto: a value with a reference that compose-go cannot read is kept and warned about;
    on: it is an error. The nearest valid one expands."""
    text = "B=\nC=${B:?must be set}\n"
    assert _expand(text)[1] == [("C", "interpolation", "warning")]
    assert _expand(text, "on")[1] == [("C", "interpolation", "error")]
    assert _expand("B=b\nC=${B:?must be set}\n") == ({"B": "b", "C": "b"}, [])


def test_yaml_values_are_never_interpolated() -> None:
    """Values from a yaml/json map have no quote: no expansion."""
    entries, _ = structured.parse_json_map('{"B": "b", "C": "${B}"}', "f.yaml", {})
    out, problems, expanded = envfile.expand(entries, "on")
    assert [e.value for e in out] == ["b", "${B}"]
    assert (problems, expanded) == ([], [])


# --- the port agrees with compose-go on generated values ----------------------------------

_PIECES = st.sampled_from(
    ["$", "{", "}", ":", "-", "+", "?", "Q1", "Q2", "ZZ", "x", "_", "\u017f", "\u212a", " ", "1"]
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interpolate")


@settings(PROPERTY, max_examples=200)
@given(
    value=st.lists(_PIECES, min_size=1, max_size=12).map("".join), quote=st.sampled_from(["", '"'])
)
def test_substitution_matches_compose_go(
    value: str, quote: str, compose_go: Read, workdir: Path
) -> None:
    """`on` reads a generated value as compose-go does, or refuses where it refuses."""
    text = f"Q1=one\nQ2=\nKK={quote}{value}{quote}\n"
    entries, problems = envfile.parse_dotenv(text, "f.env")
    if problems or len(entries) != 3:
        return
    path = workdir / "gen.env"
    path.write_text(text)
    answer = compose_go(path)
    out, found, _ = envfile.expand(entries, "on")
    refused = [p for p in found if p.rule == "interpolation"]
    if "error" in answer:
        assert refused
    else:
        assert refused == []
        assert {e.key: e.value for e in out}["KK"] == answer["env"]["KK"]  # type: ignore[index]


# --- through sops and the CLI ----------------------------------------------------------


def test_validate_lists_the_expanded_keys_and_deploys_the_expanded_value(
    cli: Callable[..., CliResult], encrypt: Callable[..., Path]
) -> None:
    """validate names the expanded keys (names only); off expands none; a bad mode is a
    usage error naming the flag."""
    path = encrypt(MATTERMOST + "LATER=${NOT_DEFINED}\n")
    result = cli("validate", "--file", str(path))
    assert result.returncode == 0, result.output
    assert "expanded (--interpolate): MM_SQLSETTINGS_DATASOURCE, MM_SERVICESETTINGS_SITEURL" in (
        result.output
    )
    assert "LATER" in result.output
    assert "undefined-reference" in result.output
    off = cli("validate", "--file", str(path), "--interpolate", "off")
    assert off.returncode == 0
    assert "expanded" not in off.output
    on = cli("validate", "--file", str(path), env={"SOPS_DEPLOY_INTERPOLATE": "on"})
    assert on.returncode == 4
    assert "LATER" in on.output
    bad = cli("validate", "--file", str(path), "--interpolate", "yes")
    assert bad.returncode == 2
    assert "--interpolate" in bad.output


@pytest.mark.parametrize("fmt", ["compose", "dotenv", "shell", "docker", "systemd", "node"])
def test_every_format_writes_the_expanded_value(
    fmt: str, encrypt: Callable[..., Path], sops_bin: str, age_id: AgeIdentity
) -> None:
    """The expansion happens once, in the source: each format carries the expanded value."""
    enc = sops.inspect(str(encrypt(MATTERMOST)))
    plaintext = sops.decrypt(sops_bin, enc, sops.AgeKeySource(file=str(age_id.path)))
    settings = Settings(
        command="validate",
        files=(enc.path,),
        format=fmt,
        age=sops.AgeKeySource(file=str(age_id.path)),
    )
    plan = build.build_plan(settings, [(enc, plaintext)], lambda _: None)
    model = envfile.MODELS[fmt](plan.content.decode())
    assert model["MM_SERVICESETTINGS_SITEURL"] == "https://mm.example.com"
    assert model["MM_SQLSETTINGS_DATASOURCE"] == (
        "postgres://mmuser:mmuser_password@postgres:5432/mattermost?sslmode=disable&connect_timeout=10"
    )
    assert plan.expanded == ("MM_SQLSETTINGS_DATASOURCE", "MM_SERVICESETTINGS_SITEURL")


def test_a_public_key_expanded_from_a_secret_is_masked(
    encrypt: Callable[..., Path], sops_bin: str, age_id: AgeIdentity
) -> None:
    """A key sops stores in clear whose value takes in a secret is a secret too: its
    expanded value is masked (and the secret's own value is)."""
    text = "DB_PASS=hunter2-secret-pw\nHOST_unencrypted=db.local\nURL_unencrypted=pg://u:${DB_PASS}@${HOST_unencrypted}\n"
    enc = sops.inspect(str(encrypt(text)))
    plaintext = sops.decrypt(sops_bin, enc, sops.AgeKeySource(file=str(age_id.path)))
    masked: list[str | tuple[str, str]] = []
    settings = Settings(
        command="validate", files=(enc.path,), age=sops.AgeKeySource(file=str(age_id.path))
    )
    build.build_plan(settings, [(enc, plaintext)], masked.extend)
    values = {v[1] if isinstance(v, tuple) else v for v in masked}
    assert "pg://u:hunter2-secret-pw@db.local" in values
    assert "hunter2-secret-pw" in values
    assert "db.local" not in values  # a public key from public keys stays public


# --- line numbers (issue 23, part 4) ---------------------------------------------------

LINES_PLAIN = "# Database\nDB_USER=app\n\n# comment two\n\n\nBAD-KEY=1\nOK=2\n"


def test_line_numbers_are_lines_of_the_encrypted_file(
    cli: Callable[..., CliResult], encrypt: Callable[..., Path]
) -> None:
    """sops's dotenv store drops blank lines: the number given is the line of the key in
    the encrypted file itself (one KEY=ENC[...] or #ENC[...] line per entry), and the
    message says which text it counts in."""
    path = encrypt(LINES_PLAIN)
    result = cli("validate", "--file", str(path))
    assert result.returncode == 4
    stored = path.read_text().splitlines()
    line = next(n for n, text in enumerate(stored, 1) if text.startswith("BAD-KEY="))
    assert line == 4  # plaintext line 7: three blank lines dropped
    assert f"{path.name}:{line}" in result.output
    assert "lines of that file itself" in result.output
    fixed = encrypt(LINES_PLAIN.replace("BAD-KEY", "BAD_KEY"), name="fixed.env.encrypted")
    assert cli("validate", "--file", str(fixed)).returncode == 0


def test_binary_store_numbers_count_the_decrypted_text(
    cli: Callable[..., CliResult], encrypt: Callable[..., Path]
) -> None:
    """A binary-store file decrypts to the text as encrypted, blank lines kept: its line."""
    path = encrypt(LINES_PLAIN, fmt="binary")
    result = cli("validate", "--file", str(path))
    assert result.returncode == 4
    assert f"{path.name}:7" in result.output
    assert "lines of its decrypted text" in result.output


# --- the switch, from every place an option comes from ------------------------------------


def test_interpolate_from_yaml_variable_and_flag(tmp_path: Path) -> None:
    """`interpolate:` in defaults and in an environment, SOPS_DEPLOY_INTERPOLATE and
    --interpolate, with the table's precedence; a bad YAML value names its key."""
    from sops_deploy.cli import build_parser, options_for
    from sops_deploy.errors import UsageError

    config = tmp_path / "sops-deploy.yaml"
    config.write_text(
        "version: 1\ndefaults:\n  interpolate: 'off'\n  hosts: [a.example]\n"
        "  remote-path: /srv/app/.env\nenvironments:\n"
        "  strict:\n    interpolate: 'on'\n  plain:\n    files: a.env\n"
    )

    def mode(*argv: str, env: dict[str, str] | None = None) -> str:
        args = build_parser().parse_args(["validate", "--config", str(config), *argv])
        built = options_for(args.command, vars(args), env or {})
        assert isinstance(built, Settings)
        return built.interpolate

    assert mode() == "off"
    assert mode("--env", "strict") == "on"
    assert mode("--env", "plain") == "off"
    assert mode("--env", "strict", env={"SOPS_DEPLOY_INTERPOLATE": "auto"}) == "auto"
    assert mode("--env", "strict", "--interpolate", "off") == "off"
    config.write_text("version: 1\ndefaults:\n  interpolate: maybe\nenvironments: {}\n")
    with pytest.raises(UsageError, match="interpolate"):
        mode()


def test_a_dollar_in_a_secret_is_never_shown_as_a_name(
    cli: Callable[..., CliResult], encrypt: Callable[..., Path]
) -> None:
    """`Kj8$mP2qXyZw` reads as a reference to `mP2qXyZw`: the warning names the key and
    counts the names, but never shows text of the value (in auto and in on)."""
    path = encrypt("DB_HOST=db\nPASS=Kj8$mP2qXyZw\nREQ=${DB_HOST}${EMPTY_SECRETNAME:?x}\n")
    for mode in ("auto", "on"):
        result = cli("validate", "--file", str(path), "--interpolate", mode)
        assert "PASS" in result.output
        assert "undefined-reference" in result.output
        assert "mP2qXyZw" not in result.output
        assert "EMPTY_SECRETNAME" not in result.output
