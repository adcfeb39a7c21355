"""Directory listings bounded in entries, bytes and time.

Paramiko's `listdir` reads READDIR answers until the server says EOF and keeps every
entry: a hostile server whose listing never ends grows the client without limit and
ignores --timeout (each answer comes quickly, so no request times out). `names` — given
the connection's READDIRs (the connection owns the wire: it sends as many READDIRs as
asked, `IN_FLIGHT`, together and hands back each answer as it is read; this module reads
the answers) —
stops with a `RemoteError` naming the directory and the bound when the listing has more
than `MAX_ENTRIES` entries, more than `MAX_BYTES` of names, or takes longer than the
connection's timeout. Only the names the caller wants (`keep`) are kept, so memory stays
that of one answer (at most Paramiko's 16 MiB packet; the others in flight wait in the SSH
channel's window) plus the matches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import paramiko
from paramiko.message import Message
from paramiko.sftp import CMD_NAME

from sops_deploy.errors import RemoteError

MAX_ENTRIES = 100_000
MAX_BYTES = 16 << 20  # names and long names, summed
# READDIRs in flight, round trip by round trip: a directory of up to 100 entries (OpenSSH
# answers 100 a READDIR) and the EOF in the first one, no request wasted; a longer listing
# asks for more at a time, never more than the last number.
IN_FLIGHT = (2, 4, 8)

Reply = tuple[int | None, Message | None]  # (None, None): an EOF status
Readdirs = Callable[[int], Iterator[Reply | OSError]]  # N READDIRs sent, the answers read

# SFTP v3 attribute flags (draft-ietf-secsh-filexfer-02 5): the fields that follow them.
_SIZE, _UIDGID, _PERMISSIONS, _ACMODTIME, _EXTENDED = 1, 2, 4, 8, 0x80000000


def names(
    readdirs: Readdirs,
    directory: str,
    keep: Callable[[str], bool],
    *,
    seconds: float,
    where: str,
) -> list[str]:
    """The names in `directory` for which `keep` is true (`.` and `..` left out)."""
    deadline = time.monotonic() + seconds
    kept: list[str] = []
    entries = size = 0
    trips = 0
    while True:
        trips += 1
        for reply in readdirs(IN_FLIGHT[min(trips, len(IN_FLIGHT)) - 1]):
            if isinstance(reply, OSError):
                raise reply
            kind, msg = reply
            if kind is None:  # SSH_FX_EOF: the listing is complete
                return kept
            if kind != CMD_NAME or msg is None:
                raise paramiko.SFTPError("expected a name list")
            count = msg.get_int()
            if count > MAX_ENTRIES - entries:
                raise _too_long(where, directory, f"more than {MAX_ENTRIES} entries")
            for _ in range(count):
                raw = msg.get_binary()
                size += len(raw) + len(msg.get_binary())
                _skip_attributes(msg)
                name = raw.decode("utf-8", "replace")
                if name not in (".", "..") and keep(name):
                    kept.append(name)
            entries += count
            if size > MAX_BYTES:
                raise _too_long(where, directory, f"more than {MAX_BYTES >> 20} MiB of names")
            if time.monotonic() > deadline:
                raise _too_long(where, directory, f"still not complete after {seconds:g}s")


def _skip_attributes(msg: Message) -> None:
    """Read past one entry's attributes (only its name is used)."""
    flags = msg.get_int()
    fields = (flags & _SIZE) * 2 + (flags & _UIDGID) + (flags & _PERMISSIONS) // 4
    fields += (flags & _ACMODTIME) // 4
    for _ in range(fields):  # 32-bit words: size is two, uid+gid two, times two
        msg.get_int()
    for _ in range(msg.get_int() if flags & _EXTENDED else 0):
        msg.get_binary()
        msg.get_binary()


def _too_long(where: str, directory: str, bound: str) -> RemoteError:
    return RemoteError(
        f"{where}: the listing of {directory} is {bound}; refused (a server whose listing "
        "never ends, or a directory far too full)",
        "check the SFTP server, and keep the target's directory small (the deploy lists it "
        "to find its own temp files and backups); raise --timeout for a slow link",
    )
