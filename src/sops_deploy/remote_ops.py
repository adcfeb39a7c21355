"""Safe operations around one remote write: connect (jump host, retries), the remote lock,
stale debris cleanup, and backups. (The post-command and audit live in `postdeploy.py`.)

`remote.py` owns the socket and the byte-level atomic write; this module composes those
primitives into the steps a careful deploy takes. It decides nothing about *what* to write.

Lock rules (documented in the README): the lock is `<path>.sops-deploy.lock`, created
exclusively (SFTP CREATE|EXCL) holding JSON who/where/when. A waiting deploy polls with
backoff up to `--lock-timeout`. A lock is taken over, with a warning, when it is older than
`STALE_LOCK_SECONDS`, when its holder ran on this machine and that process is gone, or
when it has no readable holder and is older than `UNREADABLE_LOCK_SECONDS` (a deploy that
died while writing it).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import posixpath
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import paramiko
from paramiko.sftp import CMD_EXTENDED

from sops_deploy.config import HostSpec
from sops_deploy.errors import ConnectError, RemoteError
from sops_deploy.remote import TEMP_MARKER, Connection, Credentials, Trust

LOCK_SUFFIX = ".sops-deploy.lock"
BACKUP_INFIX = ".bak."
STALE_LOCK_SECONDS = 15 * 60  # longer than any deploy: two post-command runs at the default
UNREADABLE_LOCK_SECONDS = 10
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 16.0
_BACKUP_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z$")
IO_ERRORS = (OSError, EOFError, paramiko.SSHException)

_held_tokens: set[str] = set()  # locks this process holds right now
_held_guard = threading.Lock()


def lost(spec: HostSpec, what: str, exc: BaseException) -> RemoteError:
    """A RemoteError for an SFTP/SSH failure in the middle of `what`."""
    if isinstance(exc, RemoteError):
        return exc
    if isinstance(exc, TimeoutError):
        return RemoteError(
            f"{spec}: timed out while {what}",
            "the server or the network stalled; check them, or raise --timeout",
        )
    why = "the connection was lost" if isinstance(exc, EOFError) else str(exc)
    return RemoteError(
        f"{spec}: {what} failed: {why or type(exc).__name__}",
        "check the connection and the server (disk, permissions), then deploy again",
    )


# --- connecting ------------------------------------------------------------------------


@contextlib.contextmanager
def connected(
    spec: HostSpec,
    creds: Credentials,
    trust: Trust,
    *,
    default_user: str,
    timeout: float,
    retries: int,
    jump: HostSpec | None,
    warn: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Connection]:
    """An open connection to `spec` (through `jump` if given), retried with exponential
    backoff on connection errors only. Nothing is retried once the caller has the
    connection, so a write is never repeated."""
    common: dict[str, Any] = {"default_user": default_user, "timeout": timeout, "warn": warn}
    attempt = 0
    while True:
        hop: Connection | None = None
        conn: Connection | None = None
        try:
            sock = None
            if jump is not None:
                hop = Connection(jump, creds, trust, open_sftp=False, **common)
                hop.open()
                sock = _tunnel(hop, jump, spec, timeout)
            conn = Connection(spec, creds, trust, sock=sock, **common)
            conn.open()
            break
        except ConnectError as exc:
            _close(conn, hop)
            if attempt >= retries:
                raise
            delay = min(BACKOFF_FIRST * 2**attempt, BACKOFF_MAX)
            attempt += 1
            warn(f"{exc.message}; retry {attempt}/{retries} in {delay:g}s")
            sleep(delay)
        except BaseException:
            _close(conn, hop)
            raise
    try:
        yield conn
    finally:
        _close(conn, hop)


def _close(*conns: Connection | None) -> None:
    for c in conns:
        if c is not None:
            c.close()


def _tunnel(hop: Connection, jump: HostSpec, spec: HostSpec, timeout: float) -> paramiko.Channel:
    if hop.transport is None:
        raise RuntimeError("jump connection is not open")
    try:
        return hop.transport.open_channel(
            "direct-tcpip", (spec.host, spec.port), ("127.0.0.1", 0), timeout=timeout
        )
    except (*IO_ERRORS, paramiko.ChannelException) as exc:
        raise ConnectError(
            f"{spec}: the jump host {jump} could not open a tunnel to {spec.host} port "
            f"{spec.port}: {str(exc) or type(exc).__name__}",
            "check that the target is reachable from the jump host and that the jump "
            "host's sshd allows it (AllowTcpForwarding yes)",
        ) from None


# --- the remote lock -------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return os.environ.get("USER") or "unknown"


def _holder_text(info: dict[str, Any] | None) -> str:
    if not info:
        return "an unknown deploy (the lock file is unreadable)"
    run = f", GitHub run {info['run_id']}" if info.get("run_id") else ""
    return (
        f"{info.get('user')}@{info.get('host')} pid {info.get('pid')}{run} since {info.get('time')}"
    )


def _read_lock(conn: Connection, lock: str) -> tuple[dict[str, Any] | None, float] | None:
    """(holder, age in seconds) of the lock, or None if there is no lock."""
    try:
        attr = conn.sftp.stat(lock)
        with conn.sftp.open(lock, "rb") as fh:
            raw = fh.read(4096)
    except FileNotFoundError:
        return None
    age = time.time() - (attr.st_mtime or 0)
    try:
        info = json.loads(raw)
    except ValueError:
        return None, age
    return (info if isinstance(info, dict) else None), age


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
            "user": _local_user(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "run_id": os.environ.get("GITHUB_RUN_ID"),
            "time": _now(),
            "token": token,
        }
    ).encode()
    deadline = time.monotonic() + timeout
    delay = 0.1
    vanished = 0
    while True:
        try:
            conn.write_private(lock, body)
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
        info, age = held
        reason = _stale_reason(info, age)
        if reason is not None:
            holder = _holder_text(info)
            warn(f"{conn.spec}: taking over the stale lock {lock} of {holder}: {reason}")
            with contextlib.suppress(FileNotFoundError):
                conn.sftp.remove(lock)
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
        with contextlib.suppress(*IO_ERRORS, RuntimeError):
            held = _read_lock(conn, lock)
            if held is not None and held[0] is not None and held[0].get("token") == token:
                conn.sftp.remove(lock)


def clean_debris(conn: Connection, path: str) -> list[str]:
    """Remove our temp files for `path`. Called under the lock: only the lock holder writes
    temp files, so any that exist were left by a deploy whose connection died."""
    directory, name = posixpath.split(path)
    prefix = f".{name}{TEMP_MARKER}"
    removed = []
    for entry in conn.sftp.listdir(directory):
        if entry.startswith(prefix) and entry.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                conn.sftp.remove(posixpath.join(directory, entry))
                removed.append(entry)
    return removed


# --- backups ---------------------------------------------------------------------------


def backup(conn: Connection, path: str, old: bytes, keep: int, mode: int | None = None) -> str:
    """Keep `old` as `<path>.bak.<UTC timestamp>` (0600) and prune to the newest `keep`.

    Called under the lock, so no other deploy creates backups of this file meanwhile.
    A 0600 file is kept by a hard link to it (OpenSSH's `hardlink@openssh.com`: no copy
    goes over the wire, and the rename that follows leaves the old content to the link);
    otherwise, or where the server has no such extension, `old` is uploaded."""
    while True:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{path}{BACKUP_INFIX}{stamp}"
        try:
            conn.sftp.lstat(name)
            continue  # same microsecond as an earlier backup: take the next stamp
        except FileNotFoundError:
            pass
        if mode == 0o600 and _hardlink(conn, path, name):
            break
        try:
            conn.write_private(name, old)
        except IO_ERRORS as exc:
            with contextlib.suppress(*IO_ERRORS):
                conn.sftp.remove(name)
            raise RemoteError(
                f"{conn.spec}: could not write the backup {name}: "
                f"{str(exc) or type(exc).__name__}; nothing was replaced",
                "free space on the server (or pass --backup 0), then deploy again",
            ) from None
        break
    prune_backups(conn, path, keep)
    return name


def _hardlink(conn: Connection, existing: str, new: str) -> bool:
    try:
        conn.sftp._request(  # type: ignore[attr-defined]
            CMD_EXTENDED, "hardlink@openssh.com", existing, new
        )
    except IO_ERRORS:
        return False  # not supported (or not allowed here): upload instead
    return True


def backups_of(conn: Connection, path: str) -> list[str]:
    directory, name = posixpath.split(path)
    prefix = name + BACKUP_INFIX
    found = [
        e
        for e in conn.sftp.listdir(directory)
        if e.startswith(prefix) and _BACKUP_RE.match(e[len(prefix) :])
    ]
    return [posixpath.join(directory, e) for e in sorted(found)]


def prune_backups(conn: Connection, path: str, keep: int) -> None:
    for old in backups_of(conn, path)[: -keep if keep > 0 else None]:
        with contextlib.suppress(FileNotFoundError):
            conn.sftp.remove(old)
