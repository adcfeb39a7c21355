"""Who owns the file a deploy writes: one the deploy chose, never whoever planted the
file that sits at the path now (SECURITY.md, "owner").

The owner of the new file (and of its backup and of a restored file) is, in this order:
1. `--owner USER:GROUP` (names resolved by the server, `id -u` / `getent group`; an
   SFTP-only account must give numeric ids); either part left out is the login user's;
2. the owner this tool set on its previous write of the path, when the file still has it:
   recorded in the audit line, and believed only from an audit log that the login user
   owns and nobody else may write (a user who can write the directory can replace the log,
   but not make it the login user's);
3. the login user (root with --become): the file is created by it and left so.

The login user is learnt from the lock file the deploy just created (its uid and gid are
what the server gives a new file of ours). A change of owner, and a directory that users
other than the login user can write, are warned about, naming --owner.
"""

from __future__ import annotations

import json
import re
import shlex
import stat
from collections.abc import Callable

from sops_deploy.errors import RemoteError
from sops_deploy.remote import safefile
from sops_deploy.remote.connection import Attrs, Connection
from sops_deploy.remote.failures import IO_ERRORS
from sops_deploy.remote.postcommand import run_command

Owner = tuple[int, int]
TAIL_BYTES = 65536  # how much of the audit log's end is read for the recorded owner
_NUMERIC = re.compile(r"^[0-9]+$")


def text(owner: Owner | None) -> str:
    return "?" if owner is None else f"{owner[0]}:{owner[1]}"


def me(conn: Connection, lock_path: str, seen: Attrs | OSError | None = None) -> Owner | None:
    """The login user's uid and gid as the server gives them to our new files (the lock's);
    `seen`: the lock's lstat, when the caller asked for it already."""
    try:
        attr = conn.lstat(lock_path) if seen is None else _raised(seen)
    except IO_ERRORS:
        return None
    if attr.st_uid is None or attr.st_gid is None:
        return None
    return (attr.st_uid, attr.st_gid)


def resolve(conn: Connection, wanted: str | None, timeout: float) -> tuple[int | None, int | None]:
    """`--owner USER:GROUP` as numeric ids (None: that part left out), asked of the server
    for names. Raises naming --owner when a name is unknown or cannot be asked."""
    if not wanted:
        return (None, None)
    user, _, group = wanted.partition(":")
    names = [(p, kind) for p, kind in ((user, "user"), (group, "group")) if p]
    ids: dict[str, int | None] = {"user": None, "group": None}
    for part, kind in names:
        if _NUMERIC.match(part):
            ids[kind] = int(part)
            continue
        if not conn.can_run_commands():
            raise RemoteError(
                f"{conn.spec}: --owner {wanted} names a {kind} by name, and {conn.user} "
                "cannot run commands here (an SFTP-only account) to look it up",
                "give numeric ids, e.g. --owner 1000:1000",
            )
        ask = (
            f"id -u -- {shlex.quote(part)}"
            if kind == "user"
            else (f"getent group -- {shlex.quote(part)} | cut -d: -f3")
        )
        run = run_command(conn, "/", ask, timeout, f"looking up the {kind} of --owner")
        found = run.output_tail[-1].strip() if run.ok and run.output_tail else ""
        if not _NUMERIC.match(found):
            raise RemoteError(
                f"{conn.spec}: --owner {wanted}: the server knows no {kind} {part!r}",
                f"create the {kind} on the server, or fix --owner (names or numeric ids)",
            )
        ids[kind] = int(found)
    return (ids["user"], ids["group"])


def recorded(conn: Connection, log_path: str, mine: Owner) -> Owner | None:
    """The owner the last audit line of `log_path` says this tool set, believed only when
    the log is a regular file of `mine`'s uid that nobody else may write."""
    try:
        seen = safefile.checked_name(conn, log_path, "audit log")
    except RemoteError:
        return None
    mode = 0 if seen is None else seen.st_mode or 0
    if seen is None or seen.st_uid != mine[0] or mode & 0o022 or not stat.S_ISREG(mode):
        return None
    size = seen.st_size or 0
    try:
        with safefile.open_existing(conn, log_path, seen, "audit log") as fh:
            fh.seek(max(0, size - TAIL_BYTES))
            tail = fh.read(TAIL_BYTES)
    except (*IO_ERRORS, RemoteError):
        return None
    for line in reversed(tail.splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        found = record.get("owner") if isinstance(record, dict) else None
        if isinstance(found, str) and re.fullmatch(r"[0-9]+:[0-9]+", found):
            uid, gid = found.split(":")
            return (int(uid), int(gid))
    return None


def choose(
    conn: Connection,
    path: str,
    current: Owner | None,
    wanted: tuple[int | None, int | None],
    mine: Owner | None,
    trusted: Callable[[], Owner | None],
    warn: Callable[[str], None],
) -> tuple[Owner | None, bool]:
    """(the owner to give the new file — None: the login user's, as created — and whether
    it was asked for with --owner). `trusted()` reads the recorded owner, only if needed."""
    if wanted != (None, None):
        base = mine or current or (0, 0)
        uid = wanted[0] if wanted[0] is not None else base[0]
        gid = wanted[1] if wanted[1] is not None else base[1]
        return ((uid, gid), True)
    if current is None or mine is None or current == mine:
        return (None, False)
    if trusted() == current:
        return (current, False)
    warn(
        f"{conn.spec}: {path} belonged to {text(current)}, an owner sops-deploy did not set "
        f"(no --owner, no earlier deploy of it gave it); the new file belongs to "
        f"{conn.user} ({text(mine)}): pass --owner {text(current)} if that owner is the one "
        "you want"
    )
    return (None, False)


def warn_if_shared(
    conn: Connection,
    directory: str,
    mine: Owner | None,
    warn: Callable[[str], None],
    seen: Attrs | OSError | None = None,
) -> None:
    """Warn when users other than the login user may write `directory`: they can replace
    the file between deploys (the new file's owner stays one the deploy chose). `seen`:
    the directory's stat, when the caller asked for it already."""
    if mine is None:
        return
    try:
        attr = conn.stat(directory) if seen is None else _raised(seen)
    except IO_ERRORS:
        return
    mode = attr.st_mode or 0
    others = (
        mode & 0o002
        or (mode & 0o020 and attr.st_gid != mine[1])
        or (attr.st_uid not in (mine[0], None) and mode & 0o200)
    )
    if others:
        warn(
            f"{conn.spec}: {directory} (owner {attr.st_uid}:{attr.st_gid}, mode "
            f"{stat.S_IMODE(mode):04o}) can be written by users other than {conn.user}: "
            "they can replace the file between deploys; the new file's owner is still one "
            "this deploy chose (pass --owner USER:GROUP to choose it), and the directory "
            "should be writable by its owner only"
        )


def denied(conn: Connection, path: str, owner: Owner) -> RemoteError:
    return RemoteError(
        f"{conn.spec}: --owner {text(owner)}: {conn.user} may not give {path} that owner "
        "(changing a file's owner needs root); nothing was replaced",
        "log in as root, or pass --become (sudo -n on the server), or drop --owner",
    )


def _raised(seen: Attrs | OSError) -> Attrs:
    if isinstance(seen, OSError):
        raise seen
    return seen
