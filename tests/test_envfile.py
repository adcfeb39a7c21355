"""Reading the plaintext: the source grammar, lint rules, flat maps, merging, and the CLI."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sops_deploy import envfile
from sops_deploy.envfile import Entry, structured
from sops_deploy.envfile.source import parse_dotenv_reference, read_statements
from tests.support import CliResult

Cli = Callable[..., CliResult]


def parse(text: str) -> tuple[dict[str, tuple[str, int | None]], list[tuple[int | None, str]]]:
    entries, problems = envfile.parse_dotenv(text, "f.env")
    return {e.key: (e.value, e.line) for e in entries}, [(p.line, p.rule) for p in problems]


@pytest.mark.parametrize(
    ("text", "key", "value", "line"),
    [
        pytest.param("A=plain\n", "A", "plain", 1, id="unquoted"),
        pytest.param("\n\n# note\n\nA=x\n", "A", "x", 5, id="line-after-blanks"),
        pytest.param("export A=x\n", "A", "x", 1, id="export"),
        pytest.param("A='$HOME ${X} \\n'\n", "A", "$HOME ${X} \\n", 1, id="single-no-escapes"),
        pytest.param('A="a\\nb \\" \\\\"\n', "A", 'a\nb " \\', 1, id="double-escapes"),
        pytest.param("A=pa$1wor$D\n", "A", "pa$1wor$D", 1, id="dollar-literal"),
        pytest.param("A=v # comment\n", "A", "v", 1, id="inline-comment"),
        pytest.param('A="v # kept"\n', "A", "v # kept", 1, id="quoted-hash"),
        pytest.param('X=1\nA="multi\nline"\nB=2\n', "B", "2", 4, id="line-after-multiline"),
    ],
)
def test_source_grammar(text: str, key: str, value: str, line: int) -> None:
    """The documented grammar: quotes stripped, escapes in "..." only, $ literal, lines kept."""
    values, problems = parse(text)
    assert problems == []
    assert values[key] == (value, line)


def test_unterminated_quote_does_not_swallow_later_lines() -> None:
    """After an unclosed quote the parse resumes on the next line, so later keys still count."""
    values, problems = parse('A=1\nB="open\nC=3\nD="ok"\n')
    assert problems == [(2, "unterminated-quote")]
    assert values == {"A": ("1", 1), "C": ("3", 3), "D": ("ok", 4)}


@pytest.mark.parametrize(
    ("plaintext", "rule", "line", "key"),
    [
        pytest.param(b"\xef\xbb\xbfA=1\n", "bom", 1, "A", id="bom"),
        pytest.param(b"A=1\r\nB=2\r\n", "crlf", 1, "A", id="crlf"),
        pytest.param(b"A=1\nB=caf\xe9\n", "not-utf8", 2, "B", id="not-utf8"),
    ],
)
def test_bytes_level_problems(plaintext: bytes, rule: str, line: int, key: str) -> None:
    """BOM, CRLF and non-UTF-8 bytes are found on the raw plaintext, with line and key."""
    text, problems = envfile.decode(plaintext, "f.env")
    assert [(p.rule, p.line, p.key, p.severity) for p in problems] == [(rule, line, key, "error")]
    entries, found = envfile.parse_dotenv(text, "f.env")
    assert found == []
    assert [e.key for e in entries] == (["A"] if rule == "bom" else ["A", "B"])
    assert "\r" not in "".join(e.value for e in entries)


@pytest.mark.parametrize(
    ("text", "rule", "severity"),
    [
        pytest.param("A=1\nA=2\n", "duplicate-key", "error", id="duplicate-key"),
        pytest.param("bad-key=1\n", "invalid-key", "error", id="invalid-key"),
        pytest.param("sops_X=1\n", "sops-prefix", "error", id="sops-prefix"),
        pytest.param("A=value   \n", "trailing-whitespace", "error", id="trailing-whitespace"),
        pytest.param("A=\n", "empty-value", "warning", id="empty-value"),
        pytest.param("Lower_Key=1\n", "lowercase-key", "warning", id="lowercase-key"),
        pytest.param('A="x\n', "unterminated-quote", "error", id="unterminated-quote"),
    ],
)
def test_lint_rules(text: str, rule: str, severity: str) -> None:
    """Each lint rule yields one problem with file, line, key, rule, severity and a fix."""
    entries, problems = envfile.parse_dotenv(text, "f.env")
    problems += envfile.lint(entries)
    assert [(p.rule, p.severity) for p in problems] == [(rule, severity)]
    problem = problems[0]
    assert problem.file == "f.env"
    assert problem.line is not None
    assert problem.key
    assert problem.fix


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        pytest.param("A=1\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n", "no-equals", id="bare-line"),
        pytest.param("A=1\nMIIEv+QIBADAN/BgkqhkiG9w0BAQE=\n", "invalid-key", id="base64-key"),
    ],
)
def test_a_pasted_value_is_not_shown_as_a_key(text: str, rule: str) -> None:
    """A line that may be a pasted value is reported by line only, its text never shown."""
    entries, problems = envfile.parse_dotenv(text, "f.env")
    problems += envfile.lint(entries)
    assert (problems[0].rule, problems[0].line) == (rule, 2)
    assert [p.key for p in problems] == [None] * len(problems)
    assert not [p for p in problems if "MIIE" in str(p)]


def test_trailing_whitespace_ignores_quoted_values_and_comments() -> None:
    """Blanks inside quotes or before a comment are not trailing whitespace."""
    entries, problems = envfile.parse_dotenv("A=\"v  \"\nB=v # c\nC='x'  \n", "f.env")
    assert problems == []
    assert [e.value for e in entries] == ["v  ", "v", "x"]


def test_problems_never_contain_the_value() -> None:
    """No problem text carries the value it is about."""
    secret = "s3cr3t-VALUE-zz"
    text = f'bad-key={secret}\nsops_k={secret}\nDUP={secret}\nDUP={secret}  \nO="{secret}\n'
    entries, problems = envfile.parse_dotenv(text, "f.env")
    problems += envfile.lint(entries)
    assert len(problems) >= 5
    assert all(secret not in str(p) for p in problems)


def test_flat_map_nested_value_names_key_path_and_line() -> None:
    """A nested yaml/json value is a problem naming its key path and the line of its key."""
    doc = {"A": "x", "DB": {"host": "h", "port": 5432}, "N": 7, "T": True, "Z": None}
    entries, problems = structured.parse_json_map(json.dumps(doc), "s.yaml", {"DB": 3})
    assert {e.key: e.value for e in entries} == {"A": "x", "N": "7", "T": "true", "Z": ""}
    assert [(p.rule, p.line, p.key) for p in problems] == [
        ("nested", 3, "DB"),
        ("typed-scalar", None, "N"),
    ]
    assert "DB.host" in problems[0].message
    assert "DB.port" in problems[0].message


def test_merge_later_file_wins_and_keeps_its_location() -> None:
    """A later layer's value and file/line replace the earlier one's."""
    first = [Entry("A", "1", "a.env", 1), Entry("B", "2", "a.env", 2)]
    second = [Entry("B", "3", "b.env", 7)]
    merged = envfile.merge([first, second])
    assert merged["B"] == Entry("B", "3", "b.env", 7)
    assert list(merged) == ["A", "B"]


# --- the CLI on real sops files ---------------------------------------------------------

FIVE_PROBLEMS = (
    "GOOD=value-one\n"
    "bad-key=value-two\n"
    "sops_thing=value-three\n"
    "DUP=value-four\n"
    "DUP=value-five\n"
    "TRAIL=value-six   \n"
    'OPEN="value-seven\n'
)


def test_validate_reports_five_problems_in_one_run(cli: Cli, encrypt: Callable[..., Path]) -> None:
    """validate on a file with five different problems lists all five with file:line:key, exit 4."""
    # The binary store: sops's dotenv store itself refuses a sops_ key.
    enc = encrypt(FIVE_PROBLEMS, fmt="binary")
    result = cli("validate", "--file", str(enc))
    assert result.returncode == 4, result.output
    for line, key, rule in [
        (2, "bad-key", "invalid-key"),
        (3, "sops_thing", "sops-prefix"),
        (5, "DUP", "duplicate-key"),
        (6, "TRAIL", "trailing-whitespace"),
        (7, "OPEN", "unterminated-quote"),
    ]:
        assert f"{enc}:{line}: {key}: [{rule}]" in result.stderr
    assert "5 problem(s)" in result.stderr


@pytest.mark.parametrize(
    "fmt",
    [pytest.param("yaml", id="yaml"), pytest.param("json", id="json")],
)
def test_yaml_and_json_sources(
    cli: Cli, encrypt: Callable[..., Path], tmp_path: Path, fmt: str
) -> None:
    """sops yaml/json flat maps deploy their exact values; numbers and booleans become text."""
    plain = (
        'API_TOKEN: tok-yaml-0123\nPORT: 5432\nDEBUG: false\nQUOTE: "it\'s $HOME"\n'
        if fmt == "yaml"
        else json.dumps({"API_TOKEN": "tok-json-0123", "PORT": 5432, "QUOTE": "it's $HOME"})
    )
    enc = encrypt(plain, name=f"s.{fmt}", fmt=fmt)
    result = cli("validate", "--file", str(enc))
    assert result.returncode == 0, result.output
    assert "API_TOKEN" in result.stdout
    assert "PORT" in result.stdout


@pytest.mark.parametrize(
    ("fmt", "plain", "line"),
    [
        pytest.param("yaml", "A: one-value\nDB:\n  host: db-host-name\n", 2, id="yaml"),
        # sops writes JSON one key per line after the opening brace: DB is on line 3.
        pytest.param("json", '{"A": "one-value", "DB": {"host": "db-host-name"}}', 3, id="json"),
    ],
)
def test_nested_value_names_key_path_and_line(
    cli: Cli, encrypt: Callable[..., Path], fmt: str, plain: str, line: int
) -> None:
    """A nested map in a sops yaml/json file fails naming DB.host and the encrypted file's line."""
    enc = encrypt(plain, name=f"n.{fmt}", fmt=fmt)
    result = cli("validate", "--file", str(enc))
    assert result.returncode == 4
    assert f"{enc}:{line}: DB: [nested]" in result.stderr
    assert "DB.host" in result.stderr


def test_several_files_merge_and_errors_name_their_file(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """--file twice: the later value wins on the server; a problem names the file it is in."""
    base = encrypt("A=base-value-1\nB=base-value-2\n", name="base.env")
    override = encrypt("B=override-value\nC=extra-value-3\n", name="prod.env")
    result = cli("deploy", "--file", str(base), "--file", str(override), *target_args)
    assert result.returncode == 0, result.output
    written = (remote_dir / ".env").read_text()
    assert "B='override-value'" in written
    assert "base-value-2" not in written
    broken = encrypt("B=override-value\nC=trailing-value   \n", name="broken.env")
    result = cli("validate", "--file", str(base), "--file", str(broken))
    assert result.returncode == 4
    assert f"{broken}:2: C: [trailing-whitespace]" in result.stderr


def test_binary_store_with_crlf_and_bom_is_refused(cli: Cli, encrypt: Callable[..., Path]) -> None:
    """A sops binary file whose plaintext has a BOM and CRLF gets both problems, exit 4."""
    enc = encrypt(b"\xef\xbb\xbfA=value-one\r\nB=value-two\r\n", fmt="binary")
    result = cli("validate", "--file", str(enc))
    assert result.returncode == 4
    assert f"{enc}:1: A: [bom]" in result.stderr
    assert f"{enc}:1: A: [crlf]" in result.stderr


def test_dotenv_format_refuses_interpolated_value(cli: Cli, encrypt: Callable[..., Path]) -> None:
    """--format dotenv refuses a ${...} value by key (python-dotenv would expand it)."""
    enc = encrypt("OK=plain-value\nTEMPLATE='prefix-${HOME}-suffix'\n")
    assert cli("validate", "--file", str(enc)).returncode == 0
    result = cli("validate", "--file", str(enc), "--format", "dotenv")
    assert result.returncode == 4
    assert f"{enc}:2: TEMPLATE: [unrepresentable]" in result.stderr


def test_shell_format_diff_names_only_the_changed_key(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str]
) -> None:
    """--format shell: a redeploy with one value changed names that key only."""
    plain = 'QUOTE="it\'s quoted"\nOTHER=other-value-1\n'
    first = cli("deploy", "--file", str(encrypt(plain)), "--format", "shell", *target_args)
    assert first.returncode == 0, first.output
    edited = encrypt(plain.replace("other-value-1", "other-value-2"), name="v2.env")
    again = cli("deploy", "--file", str(edited), "--format", "shell", *target_args)
    assert again.returncode == 0, again.output
    assert "changed: OTHER" in again.stdout
    assert "added:" not in again.stdout


def test_check_sees_what_compose_reads(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """check: a hand-written A=pa$word on the server is drift: Compose expands $word."""
    enc = encrypt("A='pa$word-value'\nB=same-value-b\n")
    (remote_dir / ".env").write_text("A=pa$word-value\nB=same-value-b\n")
    (remote_dir / ".env").chmod(0o600)
    result = cli("check", "--file", str(enc), *target_args)
    assert result.returncode == 3, result.output
    assert "changed: A" in result.stdout
    assert "B" not in result.stdout.split("changed:", 1)[1].split("\n", 1)[0]


# --- the linear-time reader equals python-dotenv's parse_stream ------------------------------

_PIECES = st.sampled_from(
    [
        "A",
        "KEY_1",
        "export ",
        "export",
        " ",
        "\t",
        "=",
        "==",
        "#",
        " #",
        "'",
        '"',
        "\\",
        "\\n",
        "\\'",
        '\\"',
        "\n",
        "\r",
        "\r\n",
        "$",
        "${X}",
        "x",
        "é",
        "\u2028",
        "\x85",
        "\f",
        "a b",
        "-",
        ".",
    ]
)
_LINE = st.one_of(
    st.lists(_PIECES, max_size=8).map("".join),
    st.builds(
        lambda k, q, v, tail: f"{k}={q}{v}{q}{tail}",
        st.sampled_from(["A", "B_2", "export C", "D "]),
        st.sampled_from(["", "'", '"']),
        st.lists(_PIECES, max_size=6).map("".join),
        st.sampled_from(["", " # c", "  ", " junk", "#x"]),
    ),
)


@settings(
    max_examples=600,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(lines=st.lists(_LINE, max_size=8), final_newline=st.booleans())
def test_fast_reader_equals_parse_stream(lines: list[str], final_newline: bool) -> None:
    """Entries (key, value, line) and problems of read_statements equal the reference's."""
    text = "\n".join(lines) + ("\n" if final_newline else "")
    assert read_statements(text, "f") == parse_dotenv_reference(text, "f")


def test_fast_reader_is_linear_in_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """10,000 simple and 10,000 quoted keys: each line is read once (no re-parse of the rest).

    Counted, not timed: python-dotenv's parse_stream (wrapped, still the real one) must not
    be called for them at all.
    """
    import dotenv.parser  # read by the reference parser where it runs (source.py)

    calls: list[int] = []
    real = dotenv.parser.parse_stream

    def counting(stream: Any) -> Any:
        calls.append(1)
        return real(stream)

    text = "".join(f'K{i}=v{i}\nQ{i}="a # {i}\\nb"\n' for i in range(10_000))
    monkeypatch.setattr(dotenv.parser, "parse_stream", counting)
    entries, problems = envfile.parse_dotenv(text, "f")
    assert len(entries) == 20_000
    assert problems == []
    assert entries[-1] == Entry("Q9999", "a # 9999\nb", "f", 20_000)
    assert calls == []


# --- value fragments: only a pasted continuation line, never a line the readers read -----

NEAREST_VALID = (
    'JWT_PAD="=lead"\n'
    'EQ_ONLY="="\n'
    'X="==x=="\n'
    "K==bare\n"
    "PAD==\n"
    "Auth0ClientSecret=s\n"
    "AzureAdB2CTenant1=t\n"
    "S3Bucket2Name=b\n"
    "SAML2_IDP_x509=null\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC==\n"
    'PEM="-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nAQAB==\n-----END KEY-----"\n'
)


def test_lines_the_readers_read_as_key_value_are_never_fragments() -> None:
    """Values starting with `=`, CamelCase keys with digits and a lone base64-looking line
    are KEY=value for every reader: read as such, no error (warnings only)."""
    entries, problems = envfile.parse_dotenv(NEAREST_VALID, "f.env")
    problems += envfile.lint(entries)
    assert [p for p in problems if p.severity == "error"] == []
    values = {e.key: e.value for e in entries}
    assert values["JWT_PAD"] == "=lead"
    assert values["EQ_ONLY"] == "="
    assert values["X"] == "==x=="
    assert values["K"] == "=bare"
    assert values["PAD"] == "="
    assert values["Auth0ClientSecret"] == "s"
    assert values["SAML2_IDP_x509"] == "null"
    assert values["MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"] == "="
    assert values["PEM"].endswith("AQAB==\n-----END KEY-----")
    shown = {p.key for p in problems}
    assert "Auth0ClientSecret" in shown  # a lowercase-key warning names a real key
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in shown  # a base64-like one by line only


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param(
            "TLS=-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC==\n"
            "-----END PRIVATE KEY-----\n",
            2,
            id="pem-unquoted",
        ),
        pytest.param(
            "A=1\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBgkqhkiG9w0BAQEF+AASC/yz=\nB=2\n",
            3,
            id="base64-after-bare-line",
        ),
    ],
)
def test_a_pasted_multiline_value_is_a_fragment_by_line_only(text: str, line: int) -> None:
    """The padded last line of an unquoted pasted block is a value-fragment error, by line."""
    entries, problems = envfile.parse_dotenv(text, "f.env")
    problems += envfile.lint(entries)
    fragments = [p for p in problems if p.rule == "value-fragment"]
    assert [(p.line, p.key) for p in fragments] == [(line, None)]
    assert not [p for p in problems if "MIIE" in str(p) or "Bgkq" in str(p)]
    assert all(not e.key.startswith(("MIIE", "Bgkq")) for e in entries)


def test_validate_accepts_the_nearest_valid_lines_in_every_format(
    cli: Cli, encrypt: Callable[..., Path]
) -> None:
    """The lines the old heuristic refused validate cleanly for each output format."""
    enc = encrypt(NEAREST_VALID, fmt="binary")
    for fmt in ("compose", "dotenv", "shell", "docker", "systemd", "node", "raw", "files"):
        result = cli("validate", "--file", str(enc), "--format", fmt)
        assert "value-fragment" not in result.output, (fmt, result.output)
        base64_like = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
        assert base64_like not in result.output  # named by line only
        assert base64_like.upper() not in result.output  # not even in a rename fix
        errors = re.findall(r"^error: \S+:\d+: (\S+): \[(\S+)\]", result.stderr, re.M)
        if fmt == "docker":  # the one documented class: docker reads one line per value
            assert (result.returncode, errors) == (4, [("PEM", "unrepresentable")]), result.output
        else:
            assert (result.returncode, errors) == (0, []), (fmt, result.output)
