"""The suite leaves no process behind: an account's login that blocks (`.bashrc` running
`sleep 100000`, as in tests/test_stuck_servers.py) and the sshd sessions serving it end
before the account is deleted; the session-end check (conftest.py) would name any left."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import processes
from tests.accounts import can_create_accounts, unix_account
from tests.sshd import Sshd, make_sshd
from tests.support import CliResult

EXTERNAL_SFTP = "/usr/lib/openssh/sftp-server"


def test_blocked_login_of_a_deleted_account_is_ended_with_it(
    cli: Callable[..., CliResult],
    encrypt: Callable[..., Path],
    sshd_server: Sshd,
    tmp_path: Path,
) -> None:
    """The deploy times out in the blocking .bashrc; once the test's sshd is stopped and
    its account removed, no process of that uid and none of that sshd's is alive."""
    if not can_create_accounts():
        pytest.skip("creating a Unix account needs root")
    pub = sshd_server.client_key.with_suffix(".pub").read_text()
    with unix_account(pub) as account:
        rc = account.home / ".bashrc"
        rc.write_text("sleep 100000\n")
        account.own(rc)
        server = make_sshd(
            tmp_path / "blocking",
            client_key=sshd_server.client_key,
            subsystem=EXTERNAL_SFTP,
            extra_config=account.sshd_match(),
        )
        try:
            known = tmp_path / "known"
            known.write_text(server.known_hosts_line + "\n")
            result = cli(
                "deploy", "--file", str(encrypt("HYGIENE_KEY=hygiene-value-1\n")),
                "--host", f"{account.name}@127.0.0.1:{server.port}",
                "--remote-path", str(account.home / ".env"), "--known-hosts", str(known),
                "--timeout", "2", "--retries", "0",
            )  # fmt: skip
            assert result.returncode == 1, result.output
            sleeping = [p for p in processes.processes() if p.uid == account.uid]
            assert any("sleep 100000" in p.cmd for p in sleeping), sleeping  # the attack ran
            listener = server.proc.pid if server.proc else -1
        finally:
            server.stop()
        uid = account.uid
    assert [p for p in processes.leftovers() if p.pid == listener] == []
    assert [p for p in processes.leftovers() if p.uid == uid] == []


def test_subsystem_outliving_its_connection_is_ended_with_its_sshd(
    cli: Callable[..., CliResult], encrypt: Callable[..., Path], sshd_server: Sshd, tmp_path: Path
) -> None:
    """`Subsystem sftp /bin/sleep 100000` (root, no account): the sleep outlives the
    connection that started it; stopping the test's sshd ends it too."""
    server = make_sshd(
        tmp_path / "sleepy", client_key=sshd_server.client_key, subsystem="/bin/sleep 100000"
    )
    try:
        known = tmp_path / "known"
        known.write_text(server.known_hosts_line + "\n")
        result = cli(
            "deploy", "--file", str(encrypt("HYGIENE_KEY=hygiene-value-2\n")),
            "--host", server.host, "--remote-path", str(tmp_path / ".env"),
            "--known-hosts", str(known), "--timeout", "2", "--retries", "0",
        )  # fmt: skip
        assert result.returncode == 1, result.output
        mark = str(server.root)
        assert [p for p in processes.processes() if processes.mark_of(p.pid) == mark]
    finally:
        server.stop()
    assert [p for p in processes.processes() if processes.mark_of(p.pid) == mark] == []


def test_a_process_of_an_account_ends_before_the_account_is_deleted(
    sshd_server: Sshd,
) -> None:
    """A process running as the account outside any sshd session (no mark, not a child of
    a test server) is ended by the account's removal, not left to run as a free uid."""
    if not can_create_accounts():
        pytest.skip("creating a Unix account needs root")
    pub = sshd_server.client_key.with_suffix(".pub").read_text()
    with unix_account(pub) as account:
        proc = subprocess.Popen(
            ["sleep", "100000"], user=account.uid, group=account.gid, start_new_session=True
        )
        uid = account.uid
    try:
        assert proc.wait(timeout=10) == -9  # SIGKILLed by the account's removal
        assert [p for p in processes.leftovers() if p.uid == uid] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_session_check_sees_a_live_test_server(sshd_server: Sshd) -> None:
    """Nearest valid (the check can fail): the session's own sshd, still running, is one
    of the processes the session-end check would name if it were left behind."""
    assert sshd_server.proc is not None
    assert sshd_server.proc.pid in {p.pid for p in processes.leftovers()}
