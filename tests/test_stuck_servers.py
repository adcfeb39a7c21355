"""Every network step is bounded by --timeout: a server stuck in the SFTP subsystem, in a
login shell that blocks or prints, in authentication or in the channel request fails that
host (exit 1, with OpenSSH's hint) while the other hosts of the fleet still deploy."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.accounts import Account, can_create_accounts, unix_account
from tests.hostile_sftp import Hostile
from tests.sshd import Sshd, make_sshd
from tests.support import CliResult

Cli = Callable[..., CliResult]
SECRET_ENV = "STUCK_KEY=stuck-value-1\n"
EXTERNAL_SFTP = "/usr/lib/openssh/sftp-server"


@pytest.fixture
def sleeping_subsystem(tmp_path: Path, sshd_server: Sshd) -> Iterator[Sshd]:
    """A real sshd whose sftp subsystem is `/bin/sleep 100000`."""
    server = make_sshd(
        tmp_path / "sleepy", client_key=sshd_server.client_key, subsystem="/bin/sleep 100000"
    )
    yield server
    server.stop()


def test_stuck_sftp_subsystem_fails_that_host_and_the_fleet_still_deploys(
    cli: Cli,
    encrypt: Callable[..., Path],
    sshd_server: Sshd,
    sleeping_subsystem: Sshd,
    remote_dir: Path,
    tmp_path: Path,
) -> None:
    """`Subsystem sftp /bin/sleep 100000`: that host times out with the internal-sftp hint
    (exit 1); the healthy host of the same run is deployed."""
    known = tmp_path / "known_two"
    known.write_text(sshd_server.known_hosts_line + "\n" + sleeping_subsystem.known_hosts_line)
    result = cli(
        "deploy",
        "--file",
        str(encrypt(SECRET_ENV)),
        "--host",
        sleeping_subsystem.host,
        "--host",
        sshd_server.host,
        "--remote-path",
        str(remote_dir / ".env"),
        "--known-hosts",
        str(known),
        "--timeout",
        "3",
        "--retries",
        "0",
        timeout=60,
    )
    assert result.returncode == 1, result.output
    assert f"127.0.0.1:{sleeping_subsystem.port}" in result.stderr
    assert "timed out after 3s" in result.stderr
    assert "SFTP" in result.stderr
    assert "internal-sftp" in result.stderr
    assert (remote_dir / ".env").read_text() == "STUCK_KEY='stuck-value-1'\n"


@pytest.fixture
def shell_account(
    tmp_path: Path, sshd_server: Sshd
) -> Iterator[Callable[[str], tuple[Sshd, Account]]]:
    """A bash account whose .bashrc is given, behind an sshd with the external
    sftp-server (which sshd starts through the login shell, so .bashrc runs)."""
    if not can_create_accounts():
        pytest.skip("creating a Unix account needs root")
    started: list[tuple[Sshd, contextlib.ExitStack]] = []

    def make(bashrc: str) -> tuple[Sshd, Account]:
        stack = contextlib.ExitStack()
        pub = sshd_server.client_key.with_suffix(".pub").read_text()
        account = stack.enter_context(unix_account(pub))
        rc = account.home / ".bashrc"
        rc.write_text(bashrc)
        app = account.home / "app"
        app.mkdir()
        account.own(rc, app)
        server = make_sshd(
            tmp_path / f"shell{len(started)}",
            client_key=sshd_server.client_key,
            subsystem=EXTERNAL_SFTP,
            extra_config=account.sshd_match(),
        )
        started.append((server, stack))
        return server, account

    yield make
    for server, stack in started:
        server.stop()
        stack.close()


def _deploy_as(cli: Cli, enc: Path, server: Sshd, account: Account, tmp_path: Path) -> CliResult:
    known = tmp_path / f"known_{account.name}"
    known.write_text(server.known_hosts_line + "\n")
    return cli(
        "deploy",
        "--file",
        str(enc),
        "--host",
        f"{account.name}@127.0.0.1:{server.port}",
        "--remote-path",
        str(account.home / "app" / ".env"),
        "--known-hosts",
        str(known),
        "--timeout",
        "3",
        "--retries",
        "0",
        timeout=60,
    )


def test_control_quiet_shell_profile_deploys_through_the_external_sftp_server(
    cli: Cli,
    encrypt: Callable[..., Path],
    shell_account: Callable[[str], tuple[Sshd, Account]],
    tmp_path: Path,
) -> None:
    """Control: a .bashrc that prints only when interactive lets the deploy through."""
    server, account = shell_account('case $- in *i*) echo "Welcome";; esac\n')
    result = _deploy_as(cli, encrypt(SECRET_ENV), server, account, tmp_path)
    assert result.returncode == 0, result.output
    assert (account.home / "app" / ".env").stat().st_uid == account.uid


def test_noisy_shell_profile_gets_openssh_hint_not_a_bug_report(
    cli: Cli,
    encrypt: Callable[..., Path],
    shell_account: Callable[[str], tuple[Sshd, Account]],
    tmp_path: Path,
) -> None:
    """A .bashrc that prints garbles the SFTP stream: the error says so and gives the fix."""
    server, account = shell_account('echo "Welcome to $(hostname)! Today is a fine day."\n')
    result = _deploy_as(cli, encrypt(SECRET_ENV), server, account, tmp_path)
    assert result.returncode == 1, result.output
    assert "bug" not in result.output
    assert "printed text" in result.stderr
    assert "quiet for non-interactive shells" in result.stderr
    assert "internal-sftp" in result.stderr
    assert not (account.home / "app" / ".env").exists()


def test_blocking_shell_profile_times_out_with_the_hint(
    cli: Cli,
    encrypt: Callable[..., Path],
    shell_account: Callable[[str], tuple[Sshd, Account]],
    tmp_path: Path,
) -> None:
    """A .bashrc that blocks (waits for input, sleeps) stalls the SFTP start: bounded by
    --timeout, exit 1, with the same hint."""
    server, account = shell_account("sleep 100000\n")
    result = _deploy_as(cli, encrypt(SECRET_ENV), server, account, tmp_path)
    assert result.returncode == 1, result.output
    assert "timed out after 3s" in result.stderr
    assert "internal-sftp" in result.stderr
    assert not (account.home / "app" / ".env").exists()


@pytest.mark.parametrize(
    ("trick", "step"),
    [
        pytest.param("stall-auth", "authenticating", id="auth"),
        pytest.param("stall-channel", "opening the SFTP channel", id="channel-open"),
        pytest.param("stall-sftp", "starting SFTP", id="sftp-version"),
    ],
)
def test_server_stalling_a_step_fails_within_the_timeout_naming_the_step(
    trick: str, step: str, cli: Cli, encrypt: Callable[..., Path], hostile: Hostile
) -> None:
    """A server that stops answering at one step fails the host, naming that step."""
    server, args = hostile(trick)
    result = cli("deploy", "--file", str(encrypt(SECRET_ENV)), *args, timeout=60)
    assert result.returncode == 1, result.output
    assert f"timed out after 5s while {step}" in result.stderr
    assert list((server.root / "app").iterdir()) == []
