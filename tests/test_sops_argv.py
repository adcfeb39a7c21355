"""A path is a path: sops gets `--` before every file name, so a file literally named
`--output=x` is decrypted, rotated and re-keyed, never read by sops as an option."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.maintaining import PLAIN, VALUES, Cli, sops_plaintext
from tests.support import AgeIdentity

NAME = "--output=x"


def test_file_named_like_an_option_is_a_file(
    cli: Cli, encrypt: Callable[..., Path], sops_bin: str, age_id: AgeIdentity, tmp_path: Path
) -> None:
    """validate, rotate KEY (sops set) and rotate --data-key all work on `--output=x`, and
    sops never writes an `x` (what `--output=x` would make it do)."""
    enc = encrypt(PLAIN, name=NAME)
    assert enc.name == NAME
    valid = cli("validate", f"--file={NAME}")
    assert valid.returncode == 0, valid.output
    rotated = cli("rotate", "API_TOKEN", "--generate", f"--file={NAME}")
    assert rotated.returncode == 0, rotated.output
    after = sops_plaintext(sops_bin, enc, age_id.secret)
    assert after["API_TOKEN"] != VALUES["API_TOKEN"]
    assert {k: v for k, v in after.items() if k != "API_TOKEN"} == {
        k: v for k, v in VALUES.items() if k != "API_TOKEN"
    }
    data_key = cli("rotate", "--data-key", f"--file={NAME}")
    assert data_key.returncode == 0, data_key.output
    assert not (tmp_path / "x").exists()


def test_file_named_like_a_short_option_is_a_file(
    cli: Cli, encrypt: Callable[..., Path], tmp_path: Path
) -> None:
    """`-i` (sops's in-place flag) as a file name is decrypted as a file too."""
    encrypt(PLAIN, name="-i")
    result = cli("validate", "--file=-i")
    assert result.returncode == 0, result.output
