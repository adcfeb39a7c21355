"""The core deploy path end to end: real sops, real age keys, real sshd, the real CLI."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from dotenv import dotenv_values

from sops_deploy.sops import runner
from tests.sshd import Sshd
from tests.support import AgeIdentity, CliResult, assert_no_secrets, target_flags

PLAIN = (
    "DATABASE_URL=postgres://app:Sup3r-Secret-Pw@db:5432/app\n"
    "API_TOKEN=tok_live_9f8e7d6c5b4a\n"
    'GREETING="hello # not a comment"\n'
)

Cli = Callable[..., CliResult]


def read_env(path: Path) -> dict[str, str | None]:
    return dict(dotenv_values(path, interpolate=False))


def test_happy_path_writes_file_0600_with_exact_values(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """A deploy writes every key with its exact value, mode 0600, and reports key names."""
    enc = encrypt(PLAIN)
    result = cli("deploy", "--file", str(enc), *target_args)
    assert result.returncode == 0, result.stderr
    target = remote_dir / ".env"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert read_env(target) == {
        "DATABASE_URL": "postgres://app:Sup3r-Secret-Pw@db:5432/app",
        "API_TOKEN": "tok_live_9f8e7d6c5b4a",
        "GREETING": "hello # not a comment",
    }
    assert "changed" in result.stdout
    assert "added: DATABASE_URL, API_TOKEN, GREETING" in result.stdout
    leftovers = [p for p in remote_dir.iterdir() if ".sops-deploy." in p.name]
    assert not leftovers, "temp or lock file left behind"


def test_rerun_is_idempotent(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """A second deploy of the same secrets writes nothing and says unchanged."""
    enc = encrypt(PLAIN)
    assert cli("deploy", "--file", str(enc), *target_args).returncode == 0
    before = (remote_dir / ".env").stat()
    again = cli("deploy", "--file", str(enc), *target_args)
    assert again.returncode == 0
    assert "unchanged" in again.stdout
    after = (remote_dir / ".env").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_changed_key_is_named_not_its_value(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str]
) -> None:
    """Changing one value reports that key as changed and the others as unchanged."""
    assert cli("deploy", "--file", str(encrypt(PLAIN)), *target_args).returncode == 0
    edited = PLAIN.replace("tok_live_9f8e7d6c5b4a", "tok_live_rotated_0001")
    result = cli("deploy", "--file", str(encrypt(edited, name="v2.env")), *target_args)
    assert result.returncode == 0
    assert "changed: API_TOKEN" in result.stdout
    assert "added:" not in result.stdout


def test_wrong_age_key_exits_5_and_names_recipients(
    cli: Cli,
    encrypt: Callable[..., Path],
    target_args: list[str],
    remote_dir: Path,
    age_id: AgeIdentity,
    other_age_id: AgeIdentity,
) -> None:
    """A key that is not a recipient fails with 5, listing the file's and the key's recipients."""
    enc = encrypt(PLAIN)
    result = cli("deploy", "--file", str(enc), *target_args, env={"AGE_KEY": other_age_id.secret})
    assert result.returncode == 5
    assert age_id.public in result.stderr
    assert other_age_id.public in result.stderr
    assert "sops updatekeys" in result.stderr
    assert not (remote_dir / ".env").exists()


def test_missing_age_key_says_which_secret_to_set(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str]
) -> None:
    """Without any age key the error says to set AGE_KEY."""
    result = cli("deploy", "--file", str(encrypt(PLAIN)), *target_args, env={"AGE_KEY": ""})
    assert result.returncode == 5
    assert "AGE_KEY" in result.stderr


def test_tampered_ciphertext_exits_5(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """Editing the ciphertext by hand is detected and nothing is written."""
    enc = encrypt(PLAIN)
    text = enc.read_text()
    marker = "API_TOKEN=ENC[AES256_GCM,data:"
    i = text.index(marker) + len(marker)
    enc.write_text(text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1 :])
    result = cli("deploy", "--file", str(enc), *target_args)
    assert result.returncode == 5
    assert "modified after it was encrypted" in result.stderr
    assert not (remote_dir / ".env").exists()


def test_plaintext_file_is_refused(
    cli: Cli, tmp_path: Path, target_args: list[str], remote_dir: Path, secret_values: set[str]
) -> None:
    """A plaintext .env passed as the encrypted file is refused, never deployed."""
    plain = tmp_path / "plain.env"
    plain.write_text(PLAIN)
    secret_values.add("tok_live_9f8e7d6c5b4a")
    result = cli("deploy", "--file", str(plain), *target_args)
    assert result.returncode == 5
    assert "not encrypted" in result.stderr
    assert "refusing to deploy plaintext" in result.stderr
    assert not (remote_dir / ".env").exists()


def test_missing_required_keys_exit_4_all_listed(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """Missing and empty required keys are all reported at once; nothing is written."""
    enc = encrypt(PLAIN + "EMPTY_ONE=\n")
    result = cli(
        "deploy",
        "--file",
        str(enc),
        *target_args,
        "--required",
        "API_TOKEN,SMTP_PASSWORD,REDIS_URL,EMPTY_ONE",
    )
    assert result.returncode == 4
    for key in ("SMTP_PASSWORD", "REDIS_URL", "EMPTY_ONE"):
        assert key in result.stderr
    assert "API_TOKEN" not in result.stderr
    assert not (remote_dir / ".env").exists()


def test_required_keys_from_env_variable(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str]
) -> None:
    """REQUIRED_KEYS in the environment works like --required."""
    result = cli(
        "deploy", "--file", str(encrypt(PLAIN)), *target_args, env={"REQUIRED_KEYS": "NOT_THERE"}
    )
    assert result.returncode == 4
    assert "NOT_THERE" in result.stderr


def test_unknown_host_key_refused_with_fingerprint(
    cli: Cli, encrypt: Callable[..., Path], sshd_server: Sshd, remote_dir: Path, tmp_path: Path
) -> None:
    """An unknown host is refused; the error prints its fingerprint so the user can pin it."""
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    result = cli(
        "deploy",
        "--file",
        str(encrypt(PLAIN)),
        *target_flags(sshd_server.host, remote_dir / ".env", empty),
    )
    assert result.returncode == 1
    assert "unknown host key" in result.stderr
    assert sshd_server.fingerprint in result.stderr
    assert not (remote_dir / ".env").exists()


def test_changed_host_key_refused_showing_both(
    cli: Cli,
    encrypt: Callable[..., Path],
    sshd_server: Sshd,
    remote_dir: Path,
    tmp_path: Path,
    other_host_key: str,
) -> None:
    """A known_hosts entry with another key is refused, showing both fingerprints."""
    known = tmp_path / "kh"
    kind, blob = other_host_key.split()[:2]
    known.write_text(f"[127.0.0.1]:{sshd_server.port} {kind} {blob}\n")
    result = cli(
        "deploy",
        "--file",
        str(encrypt(PLAIN)),
        *target_flags(sshd_server.host, remote_dir / ".env", known),
    )
    assert result.returncode == 1
    assert "HOST KEY CHANGED" in result.stderr
    assert sshd_server.fingerprint in result.stderr
    assert not (remote_dir / ".env").exists()


def test_pinned_fingerprint_accepts_and_wrong_one_refuses(
    cli: Cli, encrypt: Callable[..., Path], sshd_server: Sshd, remote_dir: Path
) -> None:
    """--host-key-fingerprint pins the server; a wrong fingerprint is refused."""
    enc = encrypt(PLAIN)
    base = [
        "deploy",
        "--file",
        str(enc),
        *target_flags(sshd_server.host, remote_dir / ".env"),
    ]
    wrong = cli(*base, "--host-key-fingerprint", "SHA256:" + "A" * 43)
    assert wrong.returncode == 1
    assert "fingerprint mismatch" in wrong.stderr
    assert sshd_server.fingerprint in wrong.stderr
    assert not (remote_dir / ".env").exists()
    right = cli(*base, "--host-key-fingerprint", sshd_server.fingerprint)
    assert right.returncode == 0, right.stderr
    assert (remote_dir / ".env").exists()


def test_insecure_flag_warns_every_run(
    cli: Cli, encrypt: Callable[..., Path], sshd_server: Sshd, remote_dir: Path
) -> None:
    """--insecure-accept-any-host-key deploys but warns loudly."""
    result = cli(
        "deploy",
        "--file",
        str(encrypt(PLAIN)),
        *target_flags(sshd_server.host, remote_dir / ".env", "/dev/null"),
        "--insecure-accept-any-host-key",
    )
    assert result.returncode == 0, result.stderr
    assert "WITHOUT verification" in result.stderr


def test_missing_remote_directory_is_clear(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """A remote path in a directory that does not exist names it and says to create it."""
    args = list(target_args)
    args[args.index("--remote-path") + 1] = str(remote_dir / "nope" / ".env")
    result = cli("deploy", "--file", str(encrypt(PLAIN)), *args)
    assert result.returncode == 1
    assert f"directory {remote_dir / 'nope'} does not exist" in result.stderr
    assert "mkdir -p" in result.stderr


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("two words  with  spaces", id="spaces"),
        pytest.param("before #after", id="hash"),
        pytest.param('say "hi" now', id="double-quotes"),
        pytest.param("a=b=c==", id="equals"),
        pytest.param("pässwörd-日本語-🔑", id="unicode"),
        pytest.param("pa$1wor$D ${HOME}", id="dollar"),
    ],
)
def test_hard_values_arrive_intact(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path, value: str
) -> None:
    """Values with spaces, #, quotes, =, $ and unicode reach the server exactly."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    enc = encrypt(f'HARD_VALUE="{escaped}"\nOTHER=plain-value-1\n')
    result = cli("deploy", "--file", str(enc), *target_args)
    assert result.returncode == 0, result.stderr
    assert read_env(remote_dir / ".env")["HARD_VALUE"] == value


def test_dry_run_writes_nothing(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """--dry-run connects and reports would-change but leaves the server untouched."""
    result = cli("deploy", "--file", str(encrypt(PLAIN)), *target_args, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would-change" in result.stdout
    assert not (remote_dir / ".env").exists()


def test_validate_needs_no_network(cli: Cli, encrypt: Callable[..., Path]) -> None:
    """validate decrypts and checks, prints key names and a digest, and needs no host."""
    result = cli("validate", "--file", str(encrypt(PLAIN)))
    assert result.returncode == 0, result.stderr
    assert "3 keys valid" in result.stdout
    assert "API_TOKEN" in result.stdout


def test_syntax_errors_and_duplicates_have_line_numbers(
    cli: Cli, encrypt: Callable[..., Path], tmp_path: Path
) -> None:
    """Unparseable lines and duplicate keys are errors with file:line, all in one run."""
    enc = encrypt('GOOD=value-one\nDUP=first-value\nBROKEN="unterminated\nDUP=second-value\n')
    result = cli("validate", "--file", str(enc))
    assert result.returncode == 4
    assert f"{enc}:3" in result.stderr
    assert f"{enc}:4: DUP: [duplicate-key]" in result.stderr


def test_secrets_guard_catches_a_leak(secret_values: set[str]) -> None:
    """The guard used by every CLI test really fails when a value appears in output."""
    secret_values.add("very-secret-value-123")
    with pytest.raises(AssertionError, match="leaked"):
        assert_no_secrets("log line: very-secret-value-123", secret_values)
    with pytest.raises(AssertionError, match="leaked"):
        assert_no_secrets("...line-two-secret...", {"line-one-secret\nline-two-secret"})
    assert_no_secrets("nothing to see", secret_values)


def test_sops_stderr_never_carries_the_text_it_quotes() -> None:
    """sops quotes input it cannot parse; an error built from its stderr withholds that.

    A pure-function test: the messages are sops 3.13.2's own wording, but no decrypt of a
    valid sops file makes the real sops print them, so they are given here as text.
    """
    quoted = (
        "Error unmarshalling input: invalid dotenv input line: API_TOKEN=tok_leak_1\n"
        "Error: cannot use complex value in dotenv file: [tok_leak_2]; 'tok_leak_3'\n"
    )
    text = runner.safe_stderr(quoted)
    assert "tok_leak" not in text
    assert "invalid dotenv input line: (content withheld)" in text
    assert runner.safe_stderr("Failed to get the data key.") == "Failed to get the data key."
