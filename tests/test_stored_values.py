"""`init --from` and `rotate --value-stdin` take every value the deploy path takes (multi-line
PEM keys, `\\n` escapes, whitespace-only lines), stored as sops's dotenv store can hold them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from dotenv import dotenv_values

from sops_deploy.maintain import storedform
from tests.maintaining import PLAIN, Cli, sops_plaintext
from tests.support import AgeIdentity

PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBzb21lLXRlc3Qta2V5LW5vdC1yZWFsLWF0LWFsbC1wYWRkaW5nPT0=\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("plain", id="plain"),
        pytest.param(PEM, id="pem"),
        pytest.param('a "quoted"\\n \\ and\r\nCRLF', id="quotes-backslashes-crlf"),
        pytest.param("it's $HOME # x", id="single-quote-dollar-hash"),
        pytest.param("\nleading and trailing\n", id="edge-newlines"),
    ],
)
def test_stored_text_is_one_line_and_reads_back(value: str) -> None:
    """Every value gets a one-line stored form that the source grammar reads back exactly."""
    from sops_deploy import envfile

    text = storedform.stored_text("K", value)
    assert text is not None
    assert "\n" not in text
    assert "\r" not in text
    entries, problems = envfile.parse_dotenv(f"K={text}\n", "x")
    assert not problems
    assert [(e.key, e.value) for e in entries] == [("K", value)]


def test_for_sops_keeps_other_lines_byte_for_byte() -> None:
    """Only multi-line values and whitespace-only lines change; comments and exports stay."""
    text = f"# c\nexport A=1 # note\n \t\nPEM=\"{PEM}\"\nB='x'\n"
    stored = storedform.for_sops(text)
    lines = stored.text.splitlines()
    assert lines[:2] == ["# c", "export A=1 # note"]
    assert lines[2] == ""
    assert lines[3] == 'PEM="' + PEM.replace("\n", "\\n") + '"'
    assert lines[4] == "B='x'"
    assert stored.rewritten == ((4, "PEM"),)
    assert stored.blanked == (3,)
    assert stored.unstorable == ()


MULTI = (
    "API_TOKEN=tok_stored_ab12cd34\n"
    f'SSH_KEY="{PEM}"\n'
    "   \n"
    'ESCAPED="-----BEGIN CERT-----\\nMIIBcert-line-two\\n-----END CERT-----"\n'
    "EMPTY=\n"
)
EXPECTED = {
    "API_TOKEN": "tok_stored_ab12cd34",
    "SSH_KEY": PEM,
    "ESCAPED": "-----BEGIN CERT-----\nMIIBcert-line-two\n-----END CERT-----",
    "EMPTY": "",
}


def test_init_stores_multiline_values_and_they_deploy_exactly(
    cli: Cli,
    tmp_path: Path,
    sops_bin: str,
    remote_dir: Path,
    target_args: list[str],
    secret_values: set[str],
) -> None:
    """A PEM key with real line breaks, the `\\n` form and a whitespace-only line: init
    encrypts them (saying what it normalised), and the deploy writes the same values."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".env").write_text(MULTI)
    secret_values.update(v for v in EXPECTED.values() if v)
    secret_values.update(PEM.splitlines())
    result = cli("init", "--from", ".env", "--yes")
    assert result.returncode == 0, result.stderr
    assert ".env:2: SSH_KEY spans several lines; stored on one line" in result.stderr
    assert ".env:6: a line of only spaces or tabs" in result.stderr
    key = (tmp_path / "secrets/age-key.txt").read_text()
    assert sops_plaintext(sops_bin, tmp_path / "secrets/.env.encrypted", key) == EXPECTED
    deployed = cli(
        "deploy",
        "--file",
        "secrets/.env.encrypted",
        "--format",
        "dotenv",
        *target_args,
        env={"AGE_KEY": key},
    )
    assert deployed.returncode == 0, deployed.stderr
    assert dotenv_values(remote_dir / ".env", interpolate=False) == EXPECTED


def test_init_still_refuses_an_unterminated_quote_naming_the_line(
    cli: Cli, tmp_path: Path, secret_values: set[str]
) -> None:
    """The nearest invalid input: a quote that never closes is refused, nothing written."""
    (tmp_path / ".env").write_text('OK=fine_value_91\nCERT="first-line-aaaa\nsecond-line-bbbb\n')
    secret_values.update({"fine_value_91", "first-line-aaaa", "second-line-bbbb"})
    result = cli("init", "--from", ".env", "--yes")
    assert result.returncode == 4
    assert ".env:2" in result.stderr
    assert not (tmp_path / "secrets").exists()


def test_rotate_takes_a_pem_value_from_stdin(
    cli: Cli,
    encrypt: Callable[..., Path],
    sops_bin: str,
    age_id: AgeIdentity,
    secret_values: set[str],
) -> None:
    """`rotate KEY --value-stdin < key.pem` stores the PEM and reads back exactly."""
    path = encrypt(PLAIN)
    secret_values.update(PEM.splitlines())
    result = cli("rotate", "SSH_KEY", "--value-stdin", "--file", str(path), input=PEM + "\n")
    assert result.returncode == 0, result.stderr
    values = sops_plaintext(sops_bin, path, age_id.secret)
    assert values["SSH_KEY"] == PEM
    assert "added SSH_KEY" in result.stdout
