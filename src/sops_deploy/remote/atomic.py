"""The atomic file protocol on a server: what is at a path now, and replacing it so that
readers see the old file or the new one, whole, never readable by others.

A replacement is a temp file `.<name>.sops-deploy.<random>.tmp` in the target's
directory, created exclusively with mode 0600 in the OPEN request itself, filled, given
its final mode and the owner the deploy chose (`owner`) on its handle (never by path: that
would follow a link swapped in), optionally checked (`--validate-command`), then renamed
over the target with posix-rename. The current file is
read only if it is a regular file of at most 64 MiB (`safefile.READ_LIMIT`).
Any failure removes the temp file; temp files left by a deploy whose connection died are
removed by `clean_debris` (under the lock). A symlink at the target is followed only when
the caller asks for it.
"""

from __future__ import annotations

import contextlib
import posixpath
import secrets
import shlex
import stat
from collections.abc import Callable
from dataclasses import dataclass

import paramiko

from sops_deploy.errors import RemoteError, UsageError
from sops_deploy.remote import safefile
from sops_deploy.remote.connection import Connection
from sops_deploy.remote.failures import IO_ERRORS, PERMISSION_HINT

TEMP_MARKER = ".sops-deploy."


@dataclass(frozen=True)
class FileState:
    """What is at `path` now: content (None when absent or not read), mode and owner."""

    path: str
    content: bytes | None
    mode: int | None
    uid: int | None = None
    gid: int | None = None

    @property
    def owner(self) -> tuple[int, int] | None:
        return None if self.uid is None or self.gid is None else (self.uid, self.gid)


def current(conn: Connection, path: str, *, follow_symlinks: bool, read: bool = True) -> FileState:
    """The file at `path` (its content only when `read`). A symlink there is refused
    unless `follow_symlinks`; then the file it points to is described."""
    state = _state(conn, path, read=read)
    if state is not None:
        return state
    if not follow_symlinks:
        raise UsageError(
            f"{conn.spec}: {path} is a symlink; refusing to replace it",
            "point --remote-path at the real file, or pass "
            "--follow-symlinks to write through the link",
        )
    real = conn.realpath(path)
    state = _state(conn, real, read=read)
    if state is None:
        raise RemoteError(f"{conn.spec}: {path} resolves to a symlink", "fix --remote-path")
    return state


def _state(conn: Connection, path: str, *, read: bool) -> FileState | None:
    """The file at `path`, or None when `path` is a symlink."""
    directory = posixpath.dirname(path) or "/"
    # Both asked together (one round trip); the lstat's answer is used only for a directory.
    dir_attr, attr = conn.attributes(("stat", directory), ("lstat", path))
    try:
        if isinstance(dir_attr, OSError):
            raise dir_attr
    except FileNotFoundError:
        raise RemoteError(
            f"{conn.spec}: directory {directory} does not exist",
            f"create it on the server (`mkdir -p {shlex.quote(directory)}`) or fix --remote-path "
            "(see docs/faq.md#faq-remote-dir)",
        ) from None
    except PermissionError:
        raise RemoteError(
            f"{conn.spec}: permission denied on {directory}",
            PERMISSION_HINT.format(user=conn.user),
        ) from None
    if dir_attr.st_mode is not None and not stat.S_ISDIR(dir_attr.st_mode):
        raise RemoteError(f"{conn.spec}: {directory} is not a directory", "fix --remote-path")
    if isinstance(attr, FileNotFoundError):
        return FileState(path, None, None)
    if isinstance(attr, PermissionError):
        raise RemoteError(
            f"{conn.spec}: permission denied looking at {path}",
            PERMISSION_HINT.format(user=conn.user),
        ) from None
    if isinstance(attr, OSError):
        raise attr
    mode = attr.st_mode or 0
    if stat.S_ISLNK(mode):
        return None
    if stat.S_ISDIR(mode):
        raise RemoteError(
            f"{conn.spec}: {path} is a directory",
            "point --remote-path at the file itself, e.g. /srv/app/.env",
        )
    if not stat.S_ISREG(mode):  # a FIFO would block the read, a device never end it
        raise safefile.refuse_kind(str(conn.spec), path, "target file", mode)
    content = None
    if read:
        try:
            content = safefile.read_limited(conn, path, attr, "target file")
        except PermissionError:
            raise RemoteError(
                f"{conn.spec}: permission denied reading {path}",
                f"make {path} readable by {conn.user}",
            ) from None
    return FileState(path, content, stat.S_IMODE(mode), attr.st_uid, attr.st_gid)


def write_atomic(
    conn: Connection,
    path: str,
    data: bytes,
    mode: int,
    owner: tuple[int, int] | None = None,
    warn: Callable[[str], None] = lambda _m: None,
) -> None:
    """Replace `path` with `data` (mode `mode`, owner `owner` when given and allowed)."""

    def owner_denied(attr: paramiko.SFTPAttributes) -> None:
        assert owner is not None
        warn(
            f"{conn.spec}: {path} was owned by {owner[0]}:{owner[1]}; {conn.user} may not "
            f"give the new file that owner, so it now belongs to {attr.st_uid}:{attr.st_gid}"
        )

    swap(conn, write_temp(conn, path, data, mode, owner, owner_denied), path, len(data))


def write_temp(
    conn: Connection,
    path: str,
    data: bytes,
    mode: int,
    owner: tuple[int, int] | None,
    owner_denied: Callable[[paramiko.SFTPAttributes], None],
) -> str:
    """The temp file beside `path` holding `data` (0600 from its first byte, then `mode`
    and `owner` on its handle); its path. On any failure it is removed."""
    directory, name = posixpath.split(path)
    temp = posixpath.join(directory, f".{name}{TEMP_MARKER}{secrets.token_hex(6)}.tmp")
    try:
        safefile.create_private(conn, temp, data, mode=mode, owner=owner, owner_denied=owner_denied)
    except BaseException as exc:
        remove_quietly(conn, temp)
        raise write_error(conn, path, len(data), exc) from None
    return temp


def swap(conn: Connection, temp: str, path: str, size: int) -> None:
    """Rename the temp file over `path` (posix-rename); on failure the temp is removed."""
    try:
        conn.posix_rename(temp, path)
    except BaseException as exc:
        remove_quietly(conn, temp)
        raise write_error(conn, path, size, exc) from None


def write_error(conn: Connection, path: str, size: int, exc: BaseException) -> BaseException:
    directory = posixpath.dirname(path) or "/"
    if isinstance(exc, PermissionError):
        return RemoteError(
            f"{conn.spec}: permission denied writing in {directory}",
            PERMISSION_HINT.format(user=conn.user),
        )
    if isinstance(exc, OSError) and ("No space" in str(exc) or conn.free_bytes(directory) < size):
        return RemoteError(
            f"{conn.spec}: the disk holding {directory} is full",
            "free space on the server; the old file is untouched",
        )
    if isinstance(exc, TimeoutError):
        return RemoteError(
            f"{conn.spec}: timed out after {conn.timeout:g}s while writing {path}; "
            "the old file is untouched",
            "the server or the network stalled; check them, or raise --timeout",
        )
    if isinstance(exc, IO_ERRORS):
        why = "the connection was lost" if isinstance(exc, EOFError) else str(exc)
        return RemoteError(
            f"{conn.spec}: write of {path} failed: {why or type(exc).__name__}; "
            "the old file is untouched",
            "check the connection and the server's disk",
        )
    return exc


def remove_quietly(conn: Connection, path: str) -> None:
    """Remove `path` if possible; every failure (gone, denied, lost) is ignored."""
    with contextlib.suppress(*IO_ERRORS, RuntimeError):
        conn.remove(path)


def clean_debris(conn: Connection, path: str) -> list[str]:
    """Remove our temp files for `path`. Called under the lock: only the lock holder writes
    temp files, so any that exist were left by a deploy whose connection died."""
    directory, name = posixpath.split(path)
    prefix = f".{name}{TEMP_MARKER}"
    removed = []
    for entry in conn.listdir(directory, lambda e: e.startswith(prefix) and e.endswith(".tmp")):
        if entry.startswith(prefix) and entry.endswith(".tmp"):
            try:
                conn.remove(posixpath.join(directory, entry))
            except FileNotFoundError:
                continue
            removed.append(entry)
    return removed
