"""`sops.inspect` on files the real sops wrote: the stored format and every age recipient,
found by scanning for the metadata lines (not a regex over the whole file), and plain or
malformed files refused as before."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sops_deploy.errors import DecryptError
from sops_deploy.sops import runner
from tests.support import AgeIdentity


@pytest.mark.parametrize("fmt", ["dotenv", "yaml", "json", "binary"])
def test_stored_format_and_recipients_of_real_sops_files(
    encrypt: Callable[..., Path], age_id: AgeIdentity, other_age_id: AgeIdentity, fmt: str
) -> None:
    plain = {
        "dotenv": "A=1\nB=sops_version=2\n",
        "yaml": "A: '1'\nB: two\n",
        "json": '{"A": "1", "B": "two"}\n',
        "binary": "raw bytes sops_version=3\n",
    }[fmt]
    recipients = [age_id.public, other_age_id.public]
    enc = runner.inspect(str(encrypt(plain, fmt=fmt, recipients=recipients)))
    assert enc.stored_format == fmt
    assert sorted(enc.recipients) == sorted(recipients)


def test_many_keys_dotenv_keeps_recipients_at_the_end(
    encrypt: Callable[..., Path], age_id: AgeIdentity
) -> None:
    plain = "".join(f"K{i}=value-{i}\n" for i in range(2000))
    enc = runner.inspect(str(encrypt(plain)))
    assert (enc.stored_format, enc.recipients) == ("dotenv", (age_id.public,))


@pytest.mark.parametrize(
    "text",
    [
        "A=1\nB=sops_version=3.9.0\n",  # the marker inside a value, not at a line start
        " sops_version=3.9.0\n",  # indented
        "A=1\r sops_version=3.9.0\n",
    ],
)
def test_plaintext_mentioning_the_marker_is_not_encrypted(tmp_path: Path, text: str) -> None:
    path = tmp_path / ".env"
    path.write_text(text)
    with pytest.raises(DecryptError, match="not encrypted by sops"):
        runner.inspect(str(path))


def test_marker_on_the_first_line_crlf_and_ssh_recipients(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(
        b"sops_version=3.9.0\r\nsops_age__list_0__map_recipient=age1first\n"
        b"sops_age__list_1__map_recipient=age1crlf\r\n"
        b"sops_age__list_2__map_recipient=ssh-ed25519 AAAAC3Nza key \n"
        b"sops_age__list_3__map_recipient=age1last"
    )
    enc = runner.inspect(str(path))
    # `^...=(.+?)\s*$` semantics: trailing blanks and a CR are not part of a recipient
    assert (enc.stored_format, enc.recipients) == (
        "dotenv",
        ("age1first", "age1crlf", "ssh-ed25519 AAAAC3Nza key", "age1last"),
    )


@pytest.mark.parametrize("data", [b"", b" \n\t\r\n"])
def test_empty_or_blank_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / ".env"
    path.write_bytes(data)
    with pytest.raises(DecryptError, match="is empty"):
        runner.inspect(str(path))


def test_not_utf8_is_not_encrypted(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(b"sops_version=3.9.0\nA=\xff\xfe\n")
    with pytest.raises(DecryptError, match="not encrypted by sops"):
        runner.inspect(str(path))
