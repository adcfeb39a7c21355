"""Values read back from a server are secrets like decrypted ones: the credentials running
now, printed by a post-command after a rollback (`cat .env; exit 1`), appear nowhere —
not in stdout, stderr, the step summary, an output or the `report` output — and are
registered with `::add-mask::` first. A real deploy against the test sshd."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.sshd import Sshd
from tests.support import assert_no_secrets, target_flags
from tests.test_action import HEREDOC, run_on_github

LIVE = {
    "DB_PASSWORD": "live-db-pw-7Hq2",
    "API_TOKEN": "tok_live_9f8e7d6c5b",
    "QUOTED": "live quoted 'value' $x",
    "SESSION_PIN": "k3q",  # short, but its name says secret
    "ONLY_ON_SERVER": "server-only-secret-42",
}
OLD_FILE = (
    "DB_PASSWORD=live-db-pw-7Hq2\n"
    "export API_TOKEN='tok_live_9f8e7d6c5b'\n"
    "QUOTED=\"live quoted 'value' \\$x\"\n"
    "SESSION_PIN=k3q\n"
    "ONLY_ON_SERVER=server-only-secret-42\n"
    "PUBLIC_URL=https://old.example.com\n"
    "WORKERS=8\n"
    "-----BEGIN-LOOSE-LINE-serverkey-0099\n"
)


@pytest.mark.parametrize("fmt", ["dotenv", "shell", "compose"])
def test_previous_server_values_printed_after_a_rollback_are_masked_everywhere(
    base_env: dict[str, str],
    encrypt: Callable[..., Path],
    target_args: list[str],
    remote_dir: Path,
    tmp_path: Path,
    fmt: str,
) -> None:
    """`cat .env; exit 1` fails, the old file is restored and printed by the post-command
    after rollback: its live values are masked in every form; public ones stay readable."""
    target = remote_dir / ".env"
    target.write_text(OLD_FILE)
    enc = encrypt(
        "DB_PASSWORD=new-db-pw-Zz81\nAPI_TOKEN=tok_new_1234abcd\nPUBLIC_URL=https://new.example.com\n"
        "PORT=80\n"
    )
    proc, files = run_on_github(
        base_env,
        tmp_path,
        "deploy",
        "--file",
        str(enc),
        *target_args,
        "--format",
        fmt,
        "--public-keys",
        "PUBLIC_URL",
        "--post-command",
        "cat .env; exit 1",
    )
    assert proc.returncode == 1, proc.stdout
    assert target.read_text() == OLD_FILE
    assert "post-command after rollback" in proc.stdout
    summary = files["GITHUB_STEP_SUMMARY"].read_text()
    outputs = dict(
        (name, value) for name, _, value in HEREDOC.findall(files["GITHUB_OUTPUT"].read_text())
    )
    secrets = {*LIVE.values(), "-----BEGIN-LOOSE-LINE-serverkey-0099", "new-db-pw-Zz81"}
    masks = {
        line[len("::add-mask::") :] for line in proc.stdout.splitlines() if "::add-mask::" in line
    }
    printed = "\n".join(
        line for line in proc.stdout.splitlines() if not line.startswith("::add-mask::")
    )
    assert_no_secrets(printed, secrets)
    assert_no_secrets(summary, secrets)
    assert_no_secrets(json.dumps(outputs), secrets)
    for value in ("live-db-pw-7Hq2", "tok_live_9f8e7d6c5b", "k3q", "server-only-secret-42"):
        assert value in masks, value
    report = json.loads(outputs["report"])
    tails = [line for host in report for c in host["post_command"] for line in c["output_tail"]]
    assert any("DB_PASSWORD=***" in line for line in tails), tails
    # nearest valid: public keys and short values of keys not named like secrets stay readable
    assert "PUBLIC_URL=https://old.example.com" in printed
    assert "WORKERS=8" in printed


def test_previous_files_of_a_files_directory_are_masked_after_a_rollback(
    base_env: dict[str, str],
    encrypt: Callable[..., Path],
    sshd_server: Sshd,
    remote_dir: Path,
    tmp_path: Path,
) -> None:
    """A `files` target: the files there now (one per key) are secrets when read back."""
    (remote_dir / "API_TOKEN").write_text("tok_files_live_55aa66\n")
    (remote_dir / "DB_PASSWORD").write_text("files-live-pw-0Q9w")
    known = tmp_path / "known_hosts"
    known.write_text(sshd_server.known_hosts_line + "\n")
    proc, files = run_on_github(
        base_env,
        tmp_path,
        "deploy",
        "--file",
        str(encrypt("API_TOKEN=tok_files_new_77bb88\nDB_PASSWORD=files-new-pw-3R4t\n")),
        *target_flags(sshd_server.host, remote_dir, known),
        "--format",
        "files",
        "--post-command",
        "cat API_TOKEN DB_PASSWORD; exit 1",
    )
    assert proc.returncode == 1, proc.stdout
    assert (remote_dir / "API_TOKEN").read_text() == "tok_files_live_55aa66\n"
    assert "post-command after rollback" in proc.stdout
    secrets = {"tok_files_live_55aa66", "files-live-pw-0Q9w", "tok_files_new_77bb88"}
    printed = "\n".join(
        line for line in proc.stdout.splitlines() if not line.startswith("::add-mask::")
    )
    assert_no_secrets(printed, secrets)
    assert_no_secrets(files["GITHUB_STEP_SUMMARY"].read_text(), secrets)
    assert_no_secrets(files["GITHUB_OUTPUT"].read_text(), secrets)
