"""The remote lock: no two deploys of one file overlap.

The lock is `<path>.sops-deploy.lock`, created exclusively (SFTP CREATE|EXCL, 0600)
holding JSON who/where/when. A waiting deploy polls with backoff up to `--lock-timeout`.
A lock is taken over, with a warning, when it is older than `STALE_LOCK_SECONDS`, when
its holder ran on this machine and that process is gone, or when it has no readable
holder and is older than `UNREADABLE_LOCK_SECONDS` (a deploy that died while writing it).
The takeover is atomic — of all the deploys that find one stale lock, exactly one removes
it, and never a live one (`takeover`). A symlink or a non-regular file at the lock's name
is refused: the lock is never read or created through a link (`safefile`).
Only a valid plan is ever locked for: bad secrets never reach this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sops_deploy.errors import RemoteError
from sops_deploy.inputs.runinfo import RunInfo, now
from sops_deploy.remote import safefile, takeover
from sops_deploy.remote.connection import Connection
from sops_deploy.remote.failures import IO_ERRORS, lost

LOCK_SUFFIX = ".sops-deploy.lock"
STALE_LOCK_SECONDS = 15 * 60  # longer than any deploy: two post-command runs at the default
UNREADABLE_LOCK_SECONDS = 10

_held_tokens: set[str] = set()  # locks this process holds right now
_held_guard = threading.Lock()


def _field(info: dict[str, Any], key: str) -> str:
    """One holder field as inert text: the lock file is the server's (anyone who can write
    the directory writes it), so control characters are escaped and the length bounded."""
    text = json.dumps(str(info.get(key)), ensure_ascii=False)[1:-1]
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)[:80]


def _holder_text(info: dict[str, Any] | None) -> str:
    if not info:
        return "an unknown deploy (the lock file is unreadable)"
    run = f", GitHub run {_field(info, 'run_id')}" if info.get("run_id") else ""
    who = f"{_field(info, 'user')}@{_field(info, 'host')} pid {_field(info, 'pid')}"
    return f"{who}{run} since {_field(info, 'time')}"


def _read_lock(conn: Connection, lock: str) -> tuple[dict[str, Any] | None, float, str] | None:
    """(holder, age in seconds, ident) of the lock, or None if there is no lock."""
    found = takeover.read(conn, lock)
    if found is None:
        return None
    raw, ident, age = found
    try:
        info = json.loads(raw)
    except ValueError:
        return None, age, ident
    return (info if isinstance(info, dict) else None), age, ident


def _stale_reason(info: dict[str, Any] | None, age: float) -> str | None:
    if age > STALE_LOCK_SECONDS:
        return f"it is {age / 60:.0f} minutes old (limit {STALE_LOCK_SECONDS // 60})"
    if info is None:
        if age > UNREADABLE_LOCK_SECONDS:
            return "it has no readable holder (a deploy died while taking it)"
        return None
    if info.get("host") != socket.gethostname():
        return None
    pid = info.get("pid")
    if pid == os.getpid():
        with _held_guard:
            return None if info.get("token") in _held_tokens else "its connection was lost"
    if isinstance(pid, int):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"process {pid} on this machine is gone"
        except PermissionError:
            return None
    return None


@contextlib.contextmanager
def remote_lock(
    conn: Connection,
    path: str,
    run: RunInfo,
    *,
    timeout: float,
    warn: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[str]:
    """Hold `<path>.sops-deploy.lock` for the duration; always released."""
    lock = path + LOCK_SUFFIX
    token = secrets.token_hex(8)
    body = json.dumps(
        {
            "user": run.user,
            "host": run.host,
            "pid": os.getpid(),
            "run_id": run.run_id,
            "time": now(),
            "token": token,
        }
    ).encode()
    deadline = time.monotonic() + timeout
    delay = 0.1
    vanished = 0
    while True:
        conn.cancel.check(f"taking the lock {lock}")
        try:
            safefile.create_private(conn, lock, body, wait_close=False)
            break
        except IO_ERRORS as exc:
            try:
                held = _read_lock(conn, lock)
            except IO_ERRORS:
                raise lost(conn.spec, f"taking the lock {lock}", exc) from None
            if held is None:
                vanished += 1
                if isinstance(exc, PermissionError):
                    raise RemoteError(
                        f"{conn.spec}: permission denied creating {lock}",
                        f"let {conn.user} create files in {posixpath.dirname(lock)}",
                    ) from None
                if vanished > 3:  # not held, yet it cannot be created
                    raise lost(conn.spec, f"creating the lock {lock}", exc) from None
                continue
        vanished = 0
        info, age, ident = held
        reason = _stale_reason(info, age)
        if reason is not None and takeover.take_over(conn, lock, ident):
            holder = _holder_text(info)
            warn(f"{conn.spec}: taking over the stale lock {lock} of {holder}: {reason}")
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RemoteError(
                f"{conn.spec}: {lock} is held by {_holder_text(info)}; gave up waiting "
                f"after {timeout:g}s",
                "another deploy to this file is running: wait for it, or raise "
                f"--lock-timeout; if it died, delete the lock (taken over automatically "
                f"after {STALE_LOCK_SECONDS // 60} minutes)",
            )
        sleep(min(delay, remaining))
        delay = min(delay * 2, 2.0)
    with _held_guard:
        _held_tokens.add(token)
    try:
        yield lock
    finally:
        with _held_guard:
            _held_tokens.discard(token)
        with contextlib.suppress(*IO_ERRORS, RemoteError, RuntimeError):
            held = _read_lock(conn, lock)
            if held is not None and held[0] is not None and held[0].get("token") == token:
                conn.remove(lock)
