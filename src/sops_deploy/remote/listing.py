"""Directory listings bounded in entries, bytes and time.

Paramiko's `listdir` reads READDIR answers until the server says EOF and keeps every
entry: a hostile server whose listing never ends grows the client without limit and
ignores --timeout (each answer comes quickly, so no request times out). `names` — given
the connection's raw request: the connection owns the wire, this module reads the
answers — asks for one READDIR answer at a time and stops with a `RemoteError` naming
the directory and the bound when the listing has more than `MAX_ENTRIES` entries, more
than `MAX_BYTES` of names, or takes longer than the connection's timeout. Only the names
the caller wants (`keep`) are kept, so memory stays that of one answer (at most
Paramiko's 16 MiB packet) plus the matches.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import paramiko
from paramiko.message import Message
from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_NAME, CMD_OPENDIR, CMD_READDIR

from sops_deploy.errors import RemoteError

MAX_ENTRIES = 100_000
MAX_BYTES = 16 << 20  # names and long names, summed


Request = Callable[..., tuple[int, Message]]  # the connection's raw SFTP request


def names(
    request: Request,
    directory: str,
    keep: Callable[[str], bool],
    *,
    seconds: float,
    where: str,
) -> list[str]:
    """The names in `directory` for which `keep` is true (`.` and `..` left out)."""
    deadline = time.monotonic() + seconds
    t, msg = request(CMD_OPENDIR, directory)
    if t != CMD_HANDLE:
        raise paramiko.SFTPError("expected a handle")
    handle = msg.get_binary()
    kept: list[str] = []
    entries = size = 0
    try:
        while True:
            try:
                t, msg = request(CMD_READDIR, handle)
            except EOFError:  # SSH_FX_EOF: the listing is complete
                return kept
            if t != CMD_NAME:
                raise paramiko.SFTPError("expected a name list")
            count = msg.get_int()
            if count > MAX_ENTRIES - entries:
                raise _too_long(where, directory, f"more than {MAX_ENTRIES} entries")
            for _ in range(count):
                raw = msg.get_binary()
                size += len(raw) + len(msg.get_binary())
                paramiko.SFTPAttributes._from_msg(msg)  # type: ignore[attr-defined]
                name = raw.decode("utf-8", "replace")
                if name not in (".", "..") and keep(name):
                    kept.append(name)
            entries += count
            if size > MAX_BYTES:
                raise _too_long(where, directory, f"more than {MAX_BYTES >> 20} MiB of names")
            if time.monotonic() > deadline:
                raise _too_long(where, directory, f"still not complete after {seconds:g}s")
    finally:
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            request(CMD_CLOSE, handle)


def _too_long(where: str, directory: str, bound: str) -> RemoteError:
    return RemoteError(
        f"{where}: the listing of {directory} is {bound}; refused (a server whose listing "
        "never ends, or a directory far too full)",
        "check the SFTP server, and keep the target's directory small (the deploy lists it "
        "to find its own temp files and backups); raise --timeout for a slow link",
    )
