"""Backups and rollback of the file a deploy replaces.

Before a replace, the old file is kept as `<path>.bak.<UTC timestamp>` (0600) and the
backups are pruned to the newest N. A 0600 file is kept by a hard link to it (OpenSSH's
`hardlink@openssh.com`: nothing goes over the wire, and the rename that follows leaves
the old content to the link); otherwise the old bytes are uploaded again. Rollback puts
the previous file back atomically (or removes a file that did not exist before).
Everything here runs under the lock.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
from datetime import datetime, timezone

from sops_deploy.errors import RemoteError
from sops_deploy.remote import safefile
from sops_deploy.remote.atomic import FileState, remove_quietly, write_atomic
from sops_deploy.remote.connection import Connection
from sops_deploy.remote.failures import IO_ERRORS

BACKUP_INFIX = ".bak."
_BACKUP_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z$")


def backup(conn: Connection, old: FileState, keep: int, *, link: bool = True) -> str:
    """Keep `old` as `<path>.bak.<UTC stamp>` (0600), prune to the newest `keep`; its name.
    `link`: a hard link may keep it (False when the old file's owner is not one the deploy
    chose: a link would keep that owner; a copy is the login user's)."""
    if old.content is None:
        raise ValueError("nothing to back up")
    path = old.path
    while True:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{path}{BACKUP_INFIX}{stamp}"
        if link and old.mode == 0o600 and conn.hardlink(path, name):  # fails if it exists
            break
        try:
            conn.lstat(name)
            continue  # same microsecond as an earlier backup: take the next stamp
        except FileNotFoundError:
            pass
        try:
            safefile.create_private(conn, name, old.content)
        except IO_ERRORS as exc:
            remove_quietly(conn, name)
            raise RemoteError(
                f"{conn.spec}: could not write the backup {name}: "
                f"{str(exc) or type(exc).__name__}; nothing was replaced",
                "free space on the server (or pass --backup 0), then deploy again",
            ) from None
        break
    prune_backups(conn, path, keep)
    return name


def backups_of(conn: Connection, path: str) -> list[str]:
    """The backups of `path`, oldest first."""
    directory, name = posixpath.split(path)
    prefix = name + BACKUP_INFIX
    found = conn.listdir(
        directory, lambda e: e.startswith(prefix) and bool(_BACKUP_RE.match(e[len(prefix) :]))
    )
    return [posixpath.join(directory, e) for e in sorted(found)]


def prune_backups(conn: Connection, path: str, keep: int) -> None:
    for old in backups_of(conn, path)[: -keep if keep > 0 else None]:
        with contextlib.suppress(FileNotFoundError):
            conn.remove(old)


def restore(
    conn: Connection, old: FileState, fallback_mode: int, owner: tuple[int, int] | None
) -> str:
    """Put `old` back at its path (remove the new file if there was none), owned by
    `owner` (the deploy's choice; None: the login user); what was done."""
    if old.content is None:
        conn.remove(old.path)
        return "removed the new file"
    write_atomic(conn, old.path, old.content, old.mode or fallback_mode, owner)
    return "restored the previous file"
