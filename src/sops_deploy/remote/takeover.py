"""Taking over a stale remote lock atomically: of all the deploys that judge the same lock
stale, exactly one removes it, and it removes exactly that lock — never a live one.

Why not just `remove(lock)`: with a dead holder's lock and N waiting deploys, each reads
the stale lock, then removes *whatever is at the name by then* — by then possibly the live
lock that a faster deploy has just created — and two deploys run at once.

The protocol (SFTP gives us two atomic steps: CREATE|EXCL, which fails when the name
exists, and posix-rename, which moves whatever inode the name holds at that instant):

1. Identify the stale lock by `ident` = hash(its bytes, its mtime). Lock bodies carry a
   random token, so no later lock has the same ident.
2. Create the guard `<lock>.takeover.<ident>` with CREATE|EXCL. Only one contender can
   create it; the others go back to waiting.
3. The guard's owner reads the lock again; if its ident is no longer `ident`, the stale
   lock is already gone (taken over or released): drop the guard, go back to waiting.
4. posix-rename the lock to a name only this contender uses, read what was moved, and
   remove it if its ident is `ident`.

Correctness. Premise (the premise of any stale-lock rule): a holder whose lock was judged
stale does not act on it again. A lock at the name with ident `ident` can then only be
removed by the guard's owner. Between step 3 (the lock is `ident`) and step 4's rename,
the name therefore still holds that same lock: no new lock can be created there (EXCL
fails while it exists) and nobody else removes it. So the rename moves exactly the stale
lock, and exactly one contender — the guard's owner — does it. The guard is removed after
step 4: a slow contender that creates it afterwards finds a different ident in step 3 and
backs off, because `ident` never comes back. Should the premise fail (a "stale" holder
releases in the instant between steps 3 and 4), step 4 reads a different ident, puts that
lock back with a rename that does not replace, and reports it.
A guard left by a deploy that died between steps 2 and 4 is itself stale after
`GUARD_STALE_SECONDS` and removed by the next contender.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time

from sops_deploy.remote import safefile
from sops_deploy.remote.connection import Connection
from sops_deploy.remote.failures import IO_ERRORS

GUARD_STALE_SECONDS = 120  # steps 2-4 take a few round trips
LOCK_READ_LIMIT = 4096


def ident(raw: bytes, mtime: int | None) -> str:
    """Which lock this is: its bytes (they hold a random token) and its mtime."""
    return hashlib.sha256(raw + b"\0" + str(mtime).encode()).hexdigest()[:16]


def read(conn: Connection, lock: str) -> tuple[bytes, str, float] | None:
    """(bytes, ident, age in seconds) of the lock at `lock`, None if there is none. A
    symlink or a non-regular file there is refused: its target's bytes are never read."""
    seen = safefile.checked_name(conn, lock, "lock file")
    if seen is None:
        return None
    try:
        raw = safefile.read_limited(conn, lock, seen, "lock file", LOCK_READ_LIMIT)
    except FileNotFoundError:
        return None
    return raw, ident(raw, seen.st_mtime), time.time() - (seen.st_mtime or 0)


def take_over(conn: Connection, lock: str, stale: str) -> bool:
    """Remove the lock whose ident is `stale` if this contender wins the right to (see the
    module doc); False when another contender does, or it is gone already."""
    guard = f"{lock}.takeover.{stale}"
    try:
        safefile.create_private(conn, guard, b"")
    except IO_ERRORS:
        _drop_stale_guard(conn, guard)
        return False
    try:
        now = read(conn, lock)
        if now is None or now[1] != stale:
            return False
        aside = f"{lock}.stale.{secrets.token_hex(6)}"
        conn.posix_rename(lock, aside)
        moved = read(conn, aside)
        if moved is not None and moved[1] != stale:
            with contextlib.suppress(*IO_ERRORS):
                conn.rename(aside, lock)  # SSH_FXP_RENAME never replaces an existing name
            return False
        with contextlib.suppress(FileNotFoundError):
            conn.remove(aside)
        return True
    finally:
        with contextlib.suppress(*IO_ERRORS):
            conn.remove(guard)


def _drop_stale_guard(conn: Connection, guard: str) -> None:
    with contextlib.suppress(*IO_ERRORS):
        attr = conn.lstat(guard)
        if time.time() - (attr.st_mtime or 0) > GUARD_STALE_SECONDS:
            conn.remove(guard)
