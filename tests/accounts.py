"""Throwaway Unix accounts on this machine for tests that need a real login shell, a real
chroot or a less-privileged user (the tests run as root; each account is removed again,
after every process running as it has been ended: tests/processes.py).

sshd reads `authorized_keys` with the user's privileges and demands that every component
of a ChrootDirectory is root-owned and not group- or other-writable; pytest's tmp dirs are
0700 root and /tmp is world-writable, so the accounts live under /run.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests import processes


@dataclass(frozen=True)
class Account:
    """A Unix user `name` whose files live under `base` (removed with the account)."""

    name: str
    uid: int
    gid: int
    base: Path

    @property
    def home(self) -> Path:
        return self.base / "home"

    def own(self, *paths: Path) -> None:
        for p in paths:
            os.chown(p, self.uid, self.gid, follow_symlinks=False)

    def sshd_match(self, *lines: str) -> str:
        """An sshd_config `Match User` block that lets the test client key log in."""
        body = "".join(f"  {line}\n" for line in lines)
        return (
            f"Match User {self.name}\n"
            f"  AuthorizedKeysFile {self.base}/authorized_keys\n" + body + "Match all\n"
        )


def can_create_accounts() -> bool:
    return os.geteuid() == 0 and shutil.which("useradd") is not None


@contextlib.contextmanager
def unix_account(client_pub: str, *, login_shell: str = "/bin/bash") -> Iterator[Account]:
    """A fresh user with `login_shell`, a home under /run, and `client_pub` authorized."""
    base = Path(tempfile.mkdtemp(prefix="sops-deploy-acct-", dir="/run"))
    base.chmod(0o755)
    name = f"sdt{secrets.token_hex(4)}"
    home = base / "home"
    created = boot_ticks() - 1
    subprocess.run(
        [
            "useradd",
            "-M",
            "-N",
            "-g",
            "nogroup",
            "-p",
            "*",
            "-d",
            str(home),
            "-s",
            login_shell,
            name,
        ],
        check=True,
        capture_output=True,
    )
    uid: int | None = None
    try:
        entry = pwd.getpwnam(name)
        uid = entry.pw_uid
        processes.account_created(uid)
        account = Account(name, entry.pw_uid, entry.pw_gid, base)
        home.mkdir()
        auth = base / "authorized_keys"
        auth.write_text(client_pub.strip() + "\n")
        auth.chmod(0o644)
        account.own(home)
        yield account
    finally:
        # Every process of the account (a login's shell, a blocked .bashrc, an sftp-server)
        # ends before the account does: a deleted user's processes would run on unnoticed.
        with contextlib.suppress(KeyError):
            end_processes(pwd.getpwnam(name).pw_uid, created)
        # -f: an sshd child of this user may still be exiting
        subprocess.run(["userdel", "-f", name], check=False, capture_output=True)
        if uid is not None:
            processes.account_deleted(uid)
        shutil.rmtree(base, ignore_errors=True)


def boot_ticks() -> int:
    """Now, in the clock ticks since boot that /proc/PID/stat's start time uses."""
    return int(float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK"))


def processes_of(uid: int, since: int = 0) -> list[int]:
    """The pids of the processes running as `uid` (real uid) started at or after `since`
    (boot ticks): a uid is reused after userdel, and an older process is not ours."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            started = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[19])
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("Uid:"):
                    if int(line.split()[1]) == uid and started >= since:
                        found.append(int(entry.name))
                    break
    return found


def end_processes(uid: int, since: int = 0) -> None:
    """Kill, by pid, every process of the test account `uid` started since it was created
    (before the account is deleted)."""
    for _ in range(50):
        pids = processes_of(uid, since)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


@contextlib.contextmanager
def sudoers(*lines: str) -> Iterator[Path]:
    """A file in /etc/sudoers.d holding `lines` (checked by visudo), removed afterwards."""
    path = Path("/etc/sudoers.d") / f"sops-deploy-test-{secrets.token_hex(4)}"
    path.write_text("".join(line + "\n" for line in lines))
    path.chmod(0o440)
    try:
        subprocess.run(["visudo", "-cqf", str(path)], check=True, capture_output=True)
        yield path
    finally:
        path.unlink(missing_ok=True)


def chroot_for(account: Account) -> Path:
    """A root-owned ChrootDirectory for `account` with a writable /srv/app inside."""
    root = account.base / "chroot"
    app = root / "srv" / "app"
    app.mkdir(parents=True)
    for d in (root, root / "srv"):
        d.chmod(0o755)
    account.own(app)
    return root
