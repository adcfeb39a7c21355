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
import subprocess
import tempfile
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
        if uid is not None:
            processes.kill_uid(uid)  # the account exists, so the uid is still ours alone
        subprocess.run(["userdel", "-f", name], check=False, capture_output=True)
        if uid is not None:
            processes.account_deleted(uid)
        shutil.rmtree(base, ignore_errors=True)


def chroot_for(account: Account) -> Path:
    """A root-owned ChrootDirectory for `account` with a writable /srv/app inside."""
    root = account.base / "chroot"
    app = root / "srv" / "app"
    app.mkdir(parents=True)
    for d in (root, root / "srv"):
        d.chmod(0o755)
    account.own(app)
    return root
