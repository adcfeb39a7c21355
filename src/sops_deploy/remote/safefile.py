"""Opening the files the tool creates, appends or reads on a server without ever following
a symlink, and reading them within a size limit.

SFTP v3 has no O_NOFOLLOW, so every open here (through `Connection.open_file`) is:
- a name that must be new: created with CREATE|EXCL and its mode in the OPEN request itself
  (open(2) with O_CREAT|O_EXCL fails on any existing name, a symlink included, dangling or
  not), so nothing is ever created through a link;
- a name that may exist: `lstat` first, refused unless a regular file; then opened, and the
  handle's own attributes (`fstat`) compared with the `lstat` ones (type, owner, size,
  mtime), so a swap between the two requests is refused too;
- modes and owners are set on the open handle (FSETSTAT), never by path (SETSTAT follows
  links).
Errors name the path and the fix; no server text is quoted unescaped by this module.
"""

from __future__ import annotations

import contextlib
import posixpath
import shlex
import stat
from collections.abc import Callable, Iterator

import paramiko
from paramiko.sftp import (
    SFTP_FLAG_APPEND,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_EXCL,
    SFTP_FLAG_READ,
    SFTP_FLAG_WRITE,
)

from sops_deploy.errors import RemoteError
from sops_deploy.remote.connection import Connection

READ_LIMIT = (
    64 << 20
)  # 64 MiB: the largest file the tool reads from a server (docs/safe-operations.md)
_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def size_text(size: int) -> str:
    """1536 → '1.5 KiB', 3 << 30 → '3 GiB' (binary units, as `ls -lh`)."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024:
            return (
                f"{size} bytes"
                if unit == "bytes"
                else f"{value:.1f}".removesuffix(".0") + f" {unit}"
            )
        value /= 1024
    return f"{value:.1f}".removesuffix(".0") + " TiB"


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def refuse_link(where: str, path: str, role: str) -> RemoteError:
    return RemoteError(
        f"{where}: {path} is a symlink; refusing to open the {role} through it",
        f"sops-deploy never makes this link: remove it (`rm {shlex.quote(path)}`) and check "
        f"who can write {posixpath.dirname(path) or '/'}",
    )


def refuse_kind(where: str, path: str, role: str, mode: int) -> RemoteError:
    return RemoteError(
        f"{where}: {path} is not a regular file ({_kind(mode)}); refusing to use it as the {role}",
        f"remove or rename it on the server (`mv {shlex.quote(path)} "
        f"{shlex.quote(path + '.moved')}`), then deploy again",
    )


def checked_name(conn: Connection, path: str, role: str) -> paramiko.SFTPAttributes | None:
    """The lstat attributes of `path` if it is a regular file, None if it does not exist;
    a symlink or anything else is refused."""
    return checked_names(conn, (path, role))[0]


def checked_names(
    conn: Connection, *names: tuple[str, str]
) -> list[paramiko.SFTPAttributes | None]:
    """`checked_name` for each (path, role), every lstat sent together (one round trip)."""
    answers = conn.attributes(*(("lstat", path) for path, _role in names))
    return [_regular(conn, path, role, a) for (path, role), a in zip(names, answers, strict=True)]


def _regular(
    conn: Connection, path: str, role: str, attr: paramiko.SFTPAttributes | OSError
) -> paramiko.SFTPAttributes | None:
    where = str(conn.spec)
    if isinstance(attr, FileNotFoundError):
        return None
    if isinstance(attr, OSError):
        raise attr
    mode = attr.st_mode or 0
    if stat.S_ISLNK(mode):
        raise refuse_link(where, path, role)
    if not stat.S_ISREG(mode):
        raise refuse_kind(where, path, role, mode)
    return attr


class Replaced(FileNotFoundError):
    """The name was replaced between `lstat` and open: what was looked at is gone."""


def _same_file(a: paramiko.SFTPAttributes, b: paramiko.SFTPAttributes) -> bool:
    return stat.S_ISREG(b.st_mode or 0) and (a.st_uid, a.st_gid, a.st_size, a.st_mtime) == (
        b.st_uid,
        b.st_gid,
        b.st_size,
        b.st_mtime,
    )


@contextlib.contextmanager
def open_existing(
    conn: Connection, path: str, seen: paramiko.SFTPAttributes, role: str, *, append: bool = False
) -> Iterator[paramiko.SFTPFile]:
    """Open the regular file `path` that lstat showed as `seen`, for reading or appending.
    When the handle's file is not that one, a link or odd file now at the name is refused,
    and a new regular file raises `Replaced` (nothing of it is read or written)."""
    flags = SFTP_FLAG_WRITE | SFTP_FLAG_APPEND if append else SFTP_FLAG_READ
    with conn.open_file(path, flags) as fh:
        now = fh.stat()
        if not _same_file(seen, now):
            checked_name(conn, path, role)  # a link or odd file there now: refused
            raise Replaced(path)  # a new regular file: the caller looks again
        if append:
            fh.seek(now.st_size or 0)  # writes at the end (the server appends anyway)
        yield fh


def read_limited(
    conn: Connection, path: str, seen: paramiko.SFTPAttributes, role: str, limit: int = READ_LIMIT
) -> bytes:
    """The bytes of the regular file `path` (lstat: `seen`), at most `limit` of them: a
    larger file, or one that never ends (a server that lies about its size), is refused."""
    where = str(conn.spec)
    if (seen.st_size or 0) > limit:
        raise too_big(where, path, role, size_text(seen.st_size or 0), limit)
    # The handle's attributes and the bytes arrive together (Connection.read_file); the
    # bytes are used only when the handle's file is the one lstat showed.
    attrs, data = conn.read_file(path, seen.st_size or 0, limit)
    if not _same_file(seen, attrs):
        checked_name(conn, path, role)  # a link or odd file there now: refused
        raise Replaced(path)  # a new regular file: the caller looks again
    if len(data) > limit:
        raise too_big(where, path, role, "larger than it claimed", limit)
    return data


def too_big(where: str, path: str, role: str, size: str, limit: int) -> RemoteError:
    return RemoteError(
        f"{where}: {path} is {size}, more than the {size_text(limit)} limit for a {role}; not read",
        "this is not a dotenv file: point --remote-path at the right file, or move "
        f"{shlex.quote(path)} away on the server",
    )


def create_private(
    conn: Connection,
    path: str,
    data: bytes,
    *,
    mode: int = 0o600,
    owner: tuple[int, int] | None = None,
    owner_denied: Callable[[paramiko.SFTPAttributes], None] = lambda _a: None,
    wait_close: bool = True,
) -> None:
    """Create `path`, which must not exist (not even as a link: CREATE|EXCL), 0600 from its
    first byte, holding `data`; then `mode` and `owner` are set on the handle (never by
    path). `owner_denied` hears the file's attributes when the owner may not be given.
    `wait_close=False` (the lock): the CLOSE is not waited for, once the FSTAT answered
    after the writes has shown every byte there."""
    flags = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL
    with conn.open_file(path, flags, 0o600) as fh:
        fh.set_pipelined(True)
        fh.write(data)
        if mode != 0o600:
            fh.chmod(mode)
        # The writes are not waited for: this FSTAT, on the same handle, is answered after
        # them (one round trip for all) and gives the size that reached the server.
        attr = fh.stat()
        if owner is not None and (attr.st_uid, attr.st_gid) != owner:
            try:
                fh.chown(*owner)
            except PermissionError:
                owner_denied(attr)
        if not wait_close and attr.st_size == len(data) and not _saved_failure(conn, fh):
            conn.close_later(fh)
    conn.check_written(fh)
    if attr.st_size != len(data):
        raise OSError(f"short write: {attr.st_size} of {len(data)} bytes reached the server")


def _saved_failure(conn: Connection, fh: paramiko.SFTPFile) -> bool:
    try:
        conn.check_written(fh)
    except OSError:
        return True
    return False


def append_private(conn: Connection, path: str, data: bytes, role: str) -> None:
    """Append `data` to the regular file `path` (made 0600 on its handle), or create it 0600
    when it does not exist; never through a link."""
    for _ in range(2):
        seen = checked_name(conn, path, role)
        if seen is None:
            try:
                new = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL
                with conn.open_file(path, new, 0o600) as fh:
                    fh.set_pipelined(True)  # the write is answered with the CLOSE
                    fh.write(data)
                conn.check_written(fh)
                return
            except OSError:
                if checked_name(conn, path, role) is not None:
                    continue  # created meanwhile: append to it
                raise
        try:
            with open_existing(conn, path, seen, role, append=True) as fh:
                if (seen.st_mode or 0) & 0o077:
                    fh.chmod(0o600)
                fh.set_pipelined(True)  # the write is answered with the CLOSE
                fh.write(data)
            conn.check_written(fh)
        except Replaced:
            continue
        return
    raise RemoteError(
        f"{conn.spec}: {path} keeps changing while sops-deploy opens it",
        "something else writes this file: find it, then deploy again",
    )


def chmod_regular(conn: Connection, path: str, mode: int, role: str) -> None:
    """Give the regular file `path` mode `mode` through its handle (a link is refused)."""
    seen = checked_name(conn, path, role)
    if seen is None:
        raise FileNotFoundError(path)
    with open_existing(conn, path, seen, role) as fh:
        fh.chmod(mode)
