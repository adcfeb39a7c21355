"""Server operations Ansible users expect, against a real sshd, real Unix accounts and the
real sudo: --become (sudo -n sftp-server), --owner, --validate-command, --canary, the
post-command that runs only on a change, and the owner the deploy chooses (never whoever
planted the file there). See docs/server-operations.md."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sops_deploy.deploy.rollout import NOT_ATTEMPTED_NOTE, HostResult, Plan, apply_host
from sops_deploy.errors import RemoteError, UsageError
from sops_deploy.inputs.settings import HostSpec, Settings
from sops_deploy.output import mdsafe
from sops_deploy.output.reporter import Reporter
from tests.accounts import Account, can_create_accounts, chroot_for, sudoers, unix_account
from tests.proxy import Fault, Proxy
from tests.sshd import Sshd, make_sshd
from tests.support import CliResult, FleetHost, target_flags

Cli = Callable[..., CliResult]
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
SECRET_ENV = "OPS_KEY=ops-value-1\nOPS_TOKEN=ops-token-value-2\n"
NEW_ENV = "OPS_KEY=ops-value-3\nOPS_TOKEN=ops-token-value-4\n"

pytestmark = pytest.mark.skipif(
    not (can_create_accounts() and shutil.which("sudo") and os.path.exists(SFTP_SERVER)),
    reason="needs root, useradd, sudo and openssh-server's sftp-server",
)


@dataclass
class Login:
    """A non-root account behind the test's sshd, and its flags."""

    account: Account
    sshd: Sshd
    known: Path

    def flags(self, remote: Path) -> list[str]:
        host = f"{self.account.name}@127.0.0.1:{self.sshd.port}"
        return [*target_flags(host, remote, self.known), "--timeout", "5", "--retries", "0"]


@pytest.fixture(scope="module")
def root_dir() -> Iterator[Path]:
    """A root-only directory (0700 root:root) that stands for /etc/app."""
    base = Path(tempfile.mkdtemp(prefix="sops-deploy-ops-", dir="/run"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def etc_app(root_dir: Path) -> Path:
    app = root_dir / f"app-{secrets.token_hex(3)}"
    app.mkdir(mode=0o700)
    (app / ".env").write_text("OPS_KEY=old-value-0\n")
    (app / ".env").chmod(0o600)
    return app


@pytest.fixture(scope="module")
def stall_program(root_dir: Path) -> Path:
    """A root-owned stand-in for sftp-server that never answers (sudo may run it)."""
    program = root_dir / "stalling-sftp-server"
    program.write_text("#!/bin/sh\nsleep 30\n")
    program.chmod(0o755)
    return program


def end_processes_running(program: Path) -> None:
    """Kill, by pid, the processes whose command line names `program`, and their children."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str(program).encode() in (entry / "cmdline").read_bytes():
                    pids.add(int(entry.name))
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid in pids:
                    pids.add(int(entry.name))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def logins(
    tmp_path_factory: pytest.TempPathFactory, sshd_server: Sshd, stall_program: Path
) -> Iterator[dict[str, Login]]:
    """Two non-root accounts on one sshd: `sudo` may run sftp-server and /bin/sh as root
    without a password (NOPASSWD, exactly those, and the stalling stand-in); `asks` has a
    rule that wants one."""
    pub = sshd_server.client_key.with_suffix(".pub").read_text()
    with (
        unix_account(pub) as ok,
        unix_account(pub) as asks,
        sudoers(
            f"{ok.name} ALL=(root) NOPASSWD: {SFTP_SERVER}, /bin/sh, {stall_program}",
            f"{asks.name} ALL=(root) {SFTP_SERVER}, /bin/sh",
        ),
    ):
        server = make_sshd(
            tmp_path_factory.mktemp("ops-sshd"),
            client_key=sshd_server.client_key,
            extra_config=ok.sshd_match() + asks.sshd_match(),
        )
        known = tmp_path_factory.mktemp("ops-known") / "known_hosts"
        known.write_text(server.known_hosts_line + "\n")
        try:
            yield {"sudo": Login(ok, server, known), "asks": Login(asks, server, known)}
        finally:
            server.stop()


def audit_lines(directory: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (directory / ".env.deploy.log").read_text().splitlines()]


def ours(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".sops-deploy." in p.name)


# --- --become ----------------------------------------------------------------------------


def test_become_writes_a_root_owned_path_atomically_0600_with_backup_and_audit(
    cli: Cli, encrypt: Callable[..., Path], logins: dict[str, Login], etc_app: Path
) -> None:
    """A non-root login writes a root-only directory through `sudo -n sftp-server`: the new
    file is root's, 0600, the old one kept as a root-owned backup, the audit line written,
    no lock or temp file left; the post-command runs as root in that directory."""
    login = logins["sudo"]
    result = cli(
        "deploy",
        "--file",
        str(encrypt(SECRET_ENV)),
        *login.flags(etc_app / ".env"),
        "--become",
        "--post-command",
        "id -u > ran-as",
    )
    assert result.returncode == 0, result.output
    target = etc_app / ".env"
    assert target.read_text() == "OPS_KEY='ops-value-1'\nOPS_TOKEN='ops-token-value-2'\n"
    st = target.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
    backups = list(etc_app.glob(".env.bak.*"))
    assert len(backups) == 1
    assert backups[0].read_text() == "OPS_KEY=old-value-0\n"
    assert backups[0].stat().st_uid == 0
    assert (etc_app / "ran-as").read_text().strip() == "0"
    record = audit_lines(etc_app)[-1]
    assert record["result"] == "changed"
    assert record["owner"] == "0:0"
    assert ours(etc_app) == []


def test_without_become_a_root_owned_path_names_become_and_stays_untouched(
    cli: Cli, encrypt: Callable[..., Path], logins: dict[str, Login], etc_app: Path
) -> None:
    """The same deploy without --become fails with a fix that names --become."""
    before = (etc_app / ".env").read_bytes()
    result = cli(
        "deploy", "--file", str(encrypt(SECRET_ENV)), *logins["sudo"].flags(etc_app / ".env")
    )
    assert result.returncode == 1, result.output
    assert "permission denied" in result.stderr
    assert "--become" in result.stderr
    assert (etc_app / ".env").read_bytes() == before


def test_become_when_sudo_wants_a_password_fails_fast_saying_sudo_and_the_fix(
    cli: Cli, encrypt: Callable[..., Path], logins: dict[str, Login], etc_app: Path
) -> None:
    """A sudoers rule without NOPASSWD: `sudo -n` never prompts; the host fails within
    --timeout saying sudo wants a password and naming NOPASSWD; nothing is written."""
    before = (etc_app / ".env").read_bytes()
    started = time.monotonic()
    result = cli(
        "deploy", "--file", str(encrypt(SECRET_ENV)), *logins["asks"].flags(etc_app / ".env"),
        "--become",
    )  # fmt: skip
    assert result.returncode == 1, result.output
    assert time.monotonic() - started < 20
    assert "sudo wants a password" in result.stderr
    assert "NOPASSWD" in result.stderr
    assert "log in as the file's owner" in result.stderr
    assert (etc_app / ".env").read_bytes() == before
    assert ours(etc_app) == []


def test_become_with_a_missing_sftp_server_path_says_so(
    cli: Cli, encrypt: Callable[..., Path], logins: dict[str, Login], etc_app: Path
) -> None:
    """--become-sftp-server naming a program sudo may not run fails naming sudo's rule."""
    result = cli(
        "deploy", "--file", str(encrypt(SECRET_ENV)), *logins["sudo"].flags(etc_app / ".env"),
        "--become", "--become-sftp-server", "/usr/lib/openssh/no-such-sftp-server",
    )  # fmt: skip
    assert result.returncode == 1, result.output
    assert "sudo -n /usr/lib/openssh/no-such-sftp-server" in result.stderr
    assert "NOPASSWD" in result.stderr


@pytest.fixture(scope="module")
def sftp_only(
    tmp_path_factory: pytest.TempPathFactory, sshd_server: Sshd
) -> Iterator[tuple[Sshd, Account, Path]]:
    pub = sshd_server.client_key.with_suffix(".pub").read_text()
    with unix_account(pub, login_shell="/usr/sbin/nologin") as account:
        root = chroot_for(account)
        server = make_sshd(
            tmp_path_factory.mktemp("ops-sftp-only"),
            client_key=sshd_server.client_key,
            extra_config=account.sshd_match(
                f"ChrootDirectory {root}", "ForceCommand internal-sftp"
            ),
        )
        try:
            yield server, account, root
        finally:
            server.stop()


def test_become_is_refused_for_a_chrooted_sftp_only_account(
    cli: Cli, encrypt: Callable[..., Path], sftp_only: tuple[Sshd, Account, Path], tmp_path: Path
) -> None:
    """An SFTP-only account cannot run sudo: --become is refused up front, nothing written;
    the same deploy without --become (the nearest valid input) succeeds."""
    server, account, root = sftp_only
    known = tmp_path / "known"
    known.write_text(server.known_hosts_line + "\n")
    flags = target_flags(f"{account.name}@127.0.0.1:{server.port}", "/srv/app/.env", known)
    enc = str(encrypt(SECRET_ENV))
    refused = cli("deploy", "--file", enc, *flags, "--become", "--timeout", "5")
    assert refused.returncode == 1, refused.output
    assert "--become needs an account that may run commands" in refused.stderr
    assert "SFTP-only" in refused.stderr
    assert not (root / "srv" / "app" / ".env").exists()
    plain = cli("deploy", "--file", enc, *flags)
    assert plain.returncode == 0, plain.output
    assert (root / "srv" / "app" / ".env").stat().st_uid == account.uid


def test_check_with_become_reads_a_root_only_file(
    cli: Cli, encrypt: Callable[..., Path], logins: dict[str, Login], etc_app: Path
) -> None:
    """`check --become` compares a file the login user cannot read: drift (exit 3), then,
    after the deploy, in sync (exit 0); without --become it names --become."""
    enc = str(encrypt(SECRET_ENV))
    flags = logins["sudo"].flags(etc_app / ".env")
    assert cli("check", "--file", enc, *flags, "--become").returncode == 3
    denied = cli("check", "--file", enc, *flags)
    assert denied.returncode == 1, denied.output
    assert "--become" in denied.stderr
    assert cli("deploy", "--file", enc, *flags, "--become").returncode == 0
    again = cli("check", "--file", enc, *flags, "--become")
    assert again.returncode == 0, again.output


def test_owner_by_name_on_an_sftp_only_account_asks_for_numeric_ids(
    cli: Cli, encrypt: Callable[..., Path], sftp_only: tuple[Sshd, Account, Path], tmp_path: Path
) -> None:
    """An SFTP-only account cannot look names up: --owner by name is refused (nothing
    written); its own numeric uid (the nearest valid input) deploys."""
    server, account, root = sftp_only
    app = root / "srv" / "app"
    for p in app.iterdir():
        p.unlink()
    known = tmp_path / "known"
    known.write_text(server.known_hosts_line + "\n")
    flags = target_flags(f"{account.name}@127.0.0.1:{server.port}", "/srv/app/.env", known)
    enc = str(encrypt(SECRET_ENV))
    named = cli("deploy", "--file", enc, *flags, "--owner", account.name, "--timeout", "5")
    assert named.returncode == 1, named.output
    assert "give numeric ids" in named.stderr
    assert not (app / ".env").exists()
    numeric = cli("deploy", "--file", enc, *flags, "--owner", f"{account.uid}:{account.gid}")
    assert numeric.returncode == 0, numeric.output
    assert (app / ".env").stat().st_uid == account.uid


def test_become_post_command_failure_rolls_back_the_root_owned_file(
    cli: Cli, encrypt: Callable[..., Path], logins: dict[str, Login], etc_app: Path
) -> None:
    """Rollback under --become: the previous bytes come back, root's, 0600; the new
    secrets never show in the output (the cli fixture's guard)."""
    before = (etc_app / ".env").read_bytes()
    result = cli(
        "deploy", "--file", str(encrypt(SECRET_ENV)), *logins["sudo"].flags(etc_app / ".env"),
        "--become", "--post-command", "cat .env; exit 3",
    )  # fmt: skip
    assert result.returncode == 1, result.output
    assert "restored the previous file" in result.stderr
    target = etc_app / ".env"
    assert target.read_bytes() == before
    st = target.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)
    assert ours(etc_app) == []


def test_become_refuses_a_symlink_planted_at_the_lock_name(
    cli: Cli, encrypt: Callable[..., Path], logins: dict[str, Login], etc_app: Path, tmp_path: Path
) -> None:
    """Root's sftp-server follows no link either: a planted lock link is refused, its
    target (a root file) untouched."""
    victim = etc_app / "victim.conf"
    victim.write_text("victim\n")
    (etc_app / ".env.sops-deploy.lock").symlink_to(victim)
    result = cli(
        "deploy", "--file", str(encrypt(SECRET_ENV)), *logins["sudo"].flags(etc_app / ".env"),
        "--become",
    )  # fmt: skip
    assert result.returncode == 1, result.output
    assert "is a symlink" in result.stderr
    assert victim.read_text() == "victim\n"
    assert (etc_app / ".env").read_text() == "OPS_KEY=old-value-0\n"


def become_settings(login: Login, port: int, remote: Path, **kw: object) -> Settings:
    """In-process settings for `login` through `port` (a proxy), pinned, with --become."""
    base: dict[str, object] = {
        "command": "deploy",
        "hosts": (HostSpec("127.0.0.1", port, login.account.name),),
        "remote_path": str(remote),
        "ssh_key": login.sshd.client_key.read_text(),
        "fingerprints": (login.sshd.fingerprint,),
        "retries": 0,
        "timeout": 5.0,
        "become": True,
    }
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


def test_become_cut_anywhere_leaves_the_old_or_new_file_whole_and_roots(
    logins: dict[str, Login], etc_app: Path
) -> None:
    """Cutting a --become deploy's connection at 8 points: the file is always the old or
    the new one, whole, 0600, root's; the next deploy cleans up and succeeds."""
    target = etc_app / ".env"
    old, new = (
        target.read_bytes(),
        b"".join(b"K%03d=v-%03d-%s\n" % (i, i, b"x" * 60) for i in range(3000)),
    )
    proxy = Proxy(logins["sudo"].sshd.port)
    try:
        settings = become_settings(logins["sudo"], proxy.port, target)
        plan = Plan({}, new, "dotenv")
        warnings: list[str] = []
        assert (
            apply_host(settings, plan, settings.hosts[0], "deploy", warnings.append).status
            == "changed"
        )
        total = proxy.upstream_bytes[-1]
        failed = 0
        for i in range(1, 9):
            target.write_bytes(old)
            proxy.faults.append(Fault(cut_after=total * i // 9))
            result = apply_host(settings, plan, settings.hosts[0], "deploy", warnings.append)
            failed += result.status == "failed"
            assert target.read_bytes() in (old, new)
            st = target.stat()
            assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)
            again = apply_host(settings, plan, settings.hosts[0], "deploy", warnings.append)
            assert again.status in ("changed", "unchanged"), again.error
            assert target.read_bytes() == new
            assert ours(etc_app) == []
        assert failed >= 6
    finally:
        proxy.close()


def test_become_with_a_stalled_sftp_server_fails_within_the_timeout(
    logins: dict[str, Login], etc_app: Path, stall_program: Path
) -> None:
    """sudo starts a program that never speaks SFTP: the host fails after --timeout,
    naming the step; the file is untouched."""
    login = logins["sudo"]
    settings = become_settings(
        login, login.sshd.port, etc_app / ".env", timeout=3.0, become_sftp_server=str(stall_program)
    )
    before = (etc_app / ".env").read_bytes()
    started = time.monotonic()
    try:
        result = apply_host(
            settings, Plan({}, b"A=1\n", "dotenv"), settings.hosts[0], "deploy", print
        )
    finally:
        end_processes_running(stall_program)
    assert time.monotonic() - started < 10
    assert result.status == "failed"
    assert result.error is not None
    assert "timed out after 3s while starting sftp-server under sudo" in result.error.message
    assert (etc_app / ".env").read_bytes() == before


# --- --owner -----------------------------------------------------------------------------


def test_owner_by_name_and_by_id_as_root(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """--owner nobody:nogroup (names, looked up on the server) and 65534: (an id, group
    left out) give the new file that owner; the mode stays 0600."""
    enc = str(encrypt(SECRET_ENV))
    by_name = cli("deploy", "--file", enc, *target_args, "--owner", "nobody:nogroup")
    assert by_name.returncode == 0, by_name.output
    st = (remote_dir / ".env").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o600)
    assert audit_lines(remote_dir)[-1]["owner"] == "65534:65534"
    # A later deploy without --owner keeps the owner this tool set (recorded, root's log).
    again = cli("deploy", "--file", str(encrypt(NEW_ENV)), *target_args)
    assert again.returncode == 0, again.output
    assert (remote_dir / ".env").stat().st_uid == 65534
    assert "an owner sops-deploy did not set" not in again.stderr
    by_id = cli("deploy", "--file", enc, *target_args, "--owner", ":0")
    assert by_id.returncode == 0, by_id.output
    st = (remote_dir / ".env").stat()
    assert (st.st_uid, st.st_gid) == (0, 0)


@pytest.mark.parametrize(
    ("owner", "expect", "code"),
    [
        pytest.param("no-such-user-x", "the server knows no user", 1, id="unknown-user"),
        pytest.param("app:app:x", "is not USER:GROUP", 2, id="three-parts"),
        pytest.param(":", "is not USER:GROUP", 2, id="both-left-out"),
    ],
)
def test_bad_owner_is_refused_and_nothing_written(
    owner: str,
    expect: str,
    code: int,
    cli: Cli,
    encrypt: Callable[..., Path],
    target_args: list[str],
    remote_dir: Path,
) -> None:
    result = cli("deploy", "--file", str(encrypt(SECRET_ENV)), *target_args, "--owner", owner)
    assert result.returncode == code, result.output
    assert expect in result.stderr
    assert not (remote_dir / ".env").exists()


def test_owner_without_root_needs_become_and_works_with_it(
    cli: Cli, encrypt: Callable[..., Path], logins: dict[str, Login], root_dir: Path
) -> None:
    """A non-root login may not give a file away: the error names --become; with --become
    the file gets the owner asked for."""
    login = logins["sudo"]
    app = root_dir / f"home-{secrets.token_hex(3)}"
    app.mkdir()
    login.account.own(app)
    enc = str(encrypt(SECRET_ENV))
    denied = cli("deploy", "--file", enc, *login.flags(app / ".env"), "--owner", "nobody")
    assert denied.returncode == 1, denied.output
    assert "needs root" in denied.stderr
    assert "--become" in denied.stderr
    assert not (app / ".env").exists()
    assert ours(app) == []
    ok = cli("deploy", "--file", enc, *login.flags(app / ".env"), "--owner", "nobody", "--become")
    assert ok.returncode == 0, ok.output
    assert (app / ".env").stat().st_uid == 65534


# --- the owner the deploy chose (issue 30, point 1) -------------------------------------


def test_a_file_planted_by_another_user_does_not_hand_her_the_new_secrets(
    cli: Cli,
    encrypt: Callable[..., Path],
    logins: dict[str, Login],
    target_args: list[str],
    remote_dir: Path,
) -> None:
    """Deploy as root into `chown root:mallory dir; chmod 770` where mallory replaced .env
    with her own file: the new .env and its backup are root's, not mallory's, and the run
    warns about the owner and the directory, naming --owner."""
    mallory = logins["asks"].account
    os.chown(remote_dir, 0, mallory.gid)
    remote_dir.chmod(0o770)
    planted = remote_dir / ".env"
    planted.write_text("OPS_KEY=planted\n")
    planted.chmod(0o600)
    mallory.own(planted)
    result = cli("deploy", "--file", str(encrypt(SECRET_ENV)), *target_args)
    assert result.returncode == 0, result.output
    st = planted.stat()
    assert (st.st_uid, st.st_gid) == (0, 0)
    backups = list(remote_dir.glob(".env.bak.*"))
    assert len(backups) == 1
    assert backups[0].stat().st_uid == 0
    assert backups[0].stat().st_gid == 0
    assert f"belonged to {mallory.uid}:{mallory.gid}" in result.stderr
    assert "--owner" in result.stderr
    assert "can be written by users other than" in result.stderr


def test_a_forged_audit_log_does_not_make_a_planted_owner_trusted(
    cli: Cli,
    encrypt: Callable[..., Path],
    logins: dict[str, Login],
    target_args: list[str],
    remote_dir: Path,
) -> None:
    """Mallory also plants an audit log naming her as the owner this tool set: the log is
    hers, not the login user's, so it is not believed."""
    mallory = logins["asks"].account
    planted = remote_dir / ".env"
    planted.write_text("OPS_KEY=planted\n")
    log = remote_dir / ".env.deploy.log"
    log.write_text(json.dumps({"owner": f"{mallory.uid}:{mallory.gid}"}) + "\n")
    log.chmod(0o600)
    mallory.own(planted, log)
    result = cli("deploy", "--file", str(encrypt(SECRET_ENV)), *target_args)
    assert result.returncode == 0, result.output
    assert planted.stat().st_uid == 0


# --- --validate-command -----------------------------------------------------------------


def test_validate_command_failure_keeps_the_old_file_and_reports_exit_and_output(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """A failing check: exit 1, the command's exit status and (masked) output shown, the
    old file byte-identical, no temp file, no backup; the audit line says failed."""
    target = remote_dir / ".env"
    target.write_bytes(b"OPS_KEY=old-value-0\n")
    result = cli(
        "deploy", "--file", str(encrypt(SECRET_ENV)), *target_args,
        "--validate-command", "echo checking; cat %s; grep -q ^NEEDED= %s",
    )  # fmt: skip
    assert result.returncode == 1, result.output
    assert "validate-command: exit 1" in result.stderr
    assert "checking" in result.output
    assert target.read_bytes() == b"OPS_KEY=old-value-0\n"
    assert ours(remote_dir) == []
    assert not list(remote_dir.glob(".env.bak.*"))
    assert audit_lines(remote_dir)[-1]["result"] == "failed"


def test_validate_command_success_sees_the_temp_file_then_swaps(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """%s is the temp file (quoted, mode 0600 already); a passing check lets the swap go."""
    result = cli(
        "deploy", "--file", str(encrypt(SECRET_ENV)), *target_args,
        "--validate-command", "stat -c %a %s > checked && grep -q ^OPS_KEY= %s",
    )  # fmt: skip
    assert result.returncode == 0, result.output
    assert (remote_dir / ".env").read_text().startswith("OPS_KEY=")
    assert (remote_dir / "checked").read_text().strip() == "600"
    assert ours(remote_dir) == []


def test_validate_command_without_percent_s_is_refused(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    result = cli(
        "deploy", "--file", str(encrypt(SECRET_ENV)), *target_args, "--validate-command", "true"
    )
    assert result.returncode == 2, result.output
    assert "has no %s" in result.stderr
    assert not (remote_dir / ".env").exists()


def test_validate_command_runs_as_root_with_become(
    cli: Cli, encrypt: Callable[..., Path], logins: dict[str, Login], etc_app: Path
) -> None:
    result = cli(
        "deploy", "--file", str(encrypt(SECRET_ENV)), *logins["sudo"].flags(etc_app / ".env"),
        "--become", "--validate-command", "test -r %s && id -u > validated-as",
    )  # fmt: skip
    assert result.returncode == 0, result.output
    assert (etc_app / "validated-as").read_text().strip() == "0"


# --- post-command only on a change ------------------------------------------------------


def test_post_command_runs_only_when_the_file_changed(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    enc = str(encrypt(SECRET_ENV))
    flags = [*target_args, "--post-command", "echo run >> runs"]
    first = cli("deploy", "--file", enc, *flags)
    assert first.returncode == 0, first.output
    second = cli("deploy", "--file", enc, *flags)
    assert second.returncode == 0, second.output
    assert (remote_dir / "runs").read_text() == "run\n"
    assert "the post-command runs only when the file changes" in second.output


# --- --canary -----------------------------------------------------------------------------


def test_canary_failure_leaves_the_other_hosts_not_attempted(
    cli: Cli, encrypt: Callable[..., Path], fleet_hosts: list[FleetHost], tmp_path: Path
) -> None:
    """Three hosts, --canary 1, the canary fails (its directory is missing): the two others
    are never connected to (nothing on them; an unreachable one is not even tried) and the
    summary lists them as not attempted."""
    known = tmp_path / "known"
    known.write_text("".join(h.sshd.known_hosts_line + "\n" for h in fleet_hosts[:2]))
    canary, second = fleet_hosts[0], fleet_hosts[1]
    hosts = [canary.sshd.host, second.sshd.host, "root@127.0.0.1:1"]
    canary.path("/srv/app").rmdir()
    try:
        result = cli(
        "deploy", "--file", str(encrypt(SECRET_ENV)), *target_flags(hosts, "/srv/app/.env", known),
        "--canary", "1", "--retries", "0",
    )  # fmt: skip
    finally:
        canary.path("/srv/app").mkdir()
    assert result.returncode == 1, result.output
    assert "does not exist" in result.stderr
    assert result.stderr.count("not attempted") == 2
    assert "cannot connect" not in result.output, "a host after the canary was connected to"
    assert not list(second.path("/srv/app").iterdir())


def test_summary_lists_hosts_after_a_failed_canary_as_not_attempted(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    out, err = io.StringIO(), io.StringIO()
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    reporter = Reporter(out=out, err=err, env=env)
    failed = HostResult("deploy@web1:22", "failed", error=RemoteError("web1: it failed"))
    later = HostResult("deploy@web2:22", "skipped", note=NOT_ATTEMPTED_NOTE)
    reporter.summary("deploy", Plan({}, b"A=1\n", "compose"), [failed, later])
    note = mdsafe.text(NOT_ATTEMPTED_NOTE)  # the summary's text is inert Markdown
    assert f"| `deploy@web2:22` | – | skipped: {note} |" in summary.read_text()
    assert "not attempted" in NOT_ATTEMPTED_NOTE


def test_canary_success_deploys_the_canary_first_then_the_rest(
    cli: Cli, encrypt: Callable[..., Path], fleet_hosts: list[FleetHost], tmp_path: Path
) -> None:
    known = tmp_path / "known"
    known.write_text("".join(h.sshd.known_hosts_line + "\n" for h in fleet_hosts[:3]))
    three = fleet_hosts[:3]
    result = cli(
        "deploy", "--file", str(encrypt(SECRET_ENV)),
        *target_flags([h.sshd.host for h in three], "/srv/app/.env", known),
        "--canary", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.output
    times = [h.path().stat().st_mtime_ns for h in three]
    assert times[0] < min(times[1:]), times


# --- one option table: flag, SOPS_DEPLOY_*, sops-deploy.yaml (defaults and per target) --

OPS_CONFIG = """\
version: 1
defaults:
  become: true
  canary: 1
environments:
  production:
    hosts: [web1.example.com, web2.example.com, web3.example.com]
    become-sftp-server: /usr/libexec/openssh/sftp-server
    owner: app:app
    targets:
      - remote-path: /etc/app/.env
        validate-command: grep -q ^DB_URL= %s
      - remote-path: /etc/worker/.env
        owner: "1001:"
        keys: [WORKER_*]
"""


def ops_settings(tmp_path: Path, *argv: str, env: dict[str, str] | None = None) -> Settings:
    from sops_deploy.cli import build_parser, options_for

    config = tmp_path / "sops-deploy.yaml"
    config.write_text(OPS_CONFIG)
    args = build_parser().parse_args(["deploy", "--config", str(config), *argv])
    built = options_for(args.command, vars(args), env or {})
    assert isinstance(built, Settings)
    return built


def test_server_operations_from_yaml_defaults_environment_and_targets(tmp_path: Path) -> None:
    s = ops_settings(tmp_path, "--env", "production")
    assert (s.become, s.become_sftp_server, s.canary) == (
        True,
        "/usr/libexec/openssh/sftp-server",
        1,
    )
    app, worker = s.outputs()
    assert (app.owner, app.validate_command) == ("app:app", "grep -q ^DB_URL= %s")
    assert (worker.owner, worker.validate_command) == ("1001:", None)


def test_flags_and_variables_override_the_yaml(tmp_path: Path) -> None:
    s = ops_settings(
        tmp_path, "--env", "production", "--canary", "2", "--become-sftp-server", "",
        env={"SOPS_DEPLOY_BECOME": "false"},
    )  # fmt: skip
    assert (s.canary, s.become) == (2, False)


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        pytest.param(["--canary", "-1"], "must not be negative", id="negative-canary"),
        pytest.param(["--owner", "a b"], "is not USER:GROUP", id="owner-with-space"),
        pytest.param(["--validate-command", "  "], "is empty", id="blank-validate"),
    ],
)
def test_bad_server_operation_values_are_refused_naming_the_flag(
    tmp_path: Path, argv: list[str], expect: str
) -> None:
    with pytest.raises(UsageError, match=expect):
        ops_settings(tmp_path, "--env", "production", *argv)


def test_become_sftp_server_without_become_is_refused_and_with_it_accepted(
    tmp_path: Path,
) -> None:
    with pytest.raises(UsageError, match="only used with --become"):
        ops_settings(tmp_path, "--env", "production", env={"SOPS_DEPLOY_BECOME": "false"})
    assert ops_settings(tmp_path, "--env", "production").become_sftp_server


def test_owner_on_a_files_target_is_refused(tmp_path: Path) -> None:
    config = OPS_CONFIG.replace("        keys: [WORKER_*]\n", "        format: files\n")
    (tmp_path / "sops-deploy.yaml").write_text(config)
    from sops_deploy.cli import build_parser, options_for

    args = build_parser().parse_args(
        ["deploy", "--config", str(tmp_path / "sops-deploy.yaml"), "--env", "production"]
    )
    with pytest.raises(UsageError, match="`files` directory"):
        options_for(args.command, vars(args), {})


def test_owner_warning_is_a_workflow_warning_naming_the_owner_input(tmp_path: Path) -> None:
    """In the action the owner warning is a `::warning` and names the `owner:` input."""
    out, err = io.StringIO(), io.StringIO()
    env = {"GITHUB_ACTIONS": "true", "SOPS_DEPLOY_INTERFACE": "action"}
    reporter = Reporter(out=out, err=err, env=env)
    reporter.warn("web1: /srv/app/.env belonged to 1001:1001; pass --owner 1001:1001 to keep it")
    line = out.getvalue().strip()
    assert line.startswith("::warning")
    assert "`owner:` 1001:1001" in line
    cli_reporter = Reporter(out=io.StringIO(), err=(cli_err := io.StringIO()), env={})
    cli_reporter.warn("pass --owner 1001:1001")
    assert "--owner 1001:1001" in cli_err.getvalue()


def test_each_server_operation_input_reaches_the_code_through_env() -> None:
    """action.yml passes each new input as its SOPS_DEPLOY_* variable (env: only), and the
    option table reads that variable."""
    import yaml

    from sops_deploy.inputs.table import OPTIONS

    action = yaml.safe_load((Path(__file__).parents[1] / "action.yml").read_text())
    run_env = next(s["env"] for s in action["runs"]["steps"] if s.get("id") == "run")
    for attr in ("become", "become_sftp_server", "owner", "validate_command", "canary"):
        name = attr.replace("_", "-")
        assert name in action["inputs"]
        variable = OPTIONS[attr].env_names()[0]
        assert run_env[variable] == "${{ inputs." + name + " }}"
