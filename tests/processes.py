"""Processes the tests start, found through /proc (Linux), so that none outlives its test.

A test account's login (a `.bashrc` running `sleep 100000`, an sftp-server) keeps
running as that uid after sshd lets go of it, and after `userdel` (tests/accounts.py
ends them first); a per-connection sshd child outlives the listener it was forked from.
`kill_tree` ends a process's descendants (by pid, SIGKILL, waiting until they are gone),
`kill_marked` the processes of a test sshd's sessions, which carry its mark (`SetEnv`)
in their environment even once reparented. Every account a test creates (with the time
span it was ours: a freed uid is reused), every process tree and every mark of a test
server is registered here, and `leftovers` (the session-end check in conftest.py) names
whatever of them is still alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

# Accounts tests created (tests/accounts.py): uid → (created, deleted) in clock ticks since
# boot. A uid is free again after `userdel` and another run's `useradd` may take it, so a
# process counts as the account's only if it started while the account was ours.
ACCOUNTS: dict[int, list[tuple[int, int | None]]] = {}
MARKER = "SOPS_DEPLOY_TEST_SSHD"  # set by a test sshd in every session's environment
MARKS: set[str] = set()  # the values of MARKER of the sshds tests started
STARTED: set[tuple[int, int]] = set()  # (pid, start time) of server processes tests started


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    uid: int
    start: int  # clock ticks after boot: with the pid, names one process for good
    state: str
    cmd: str


def now() -> int:
    """Clock ticks since boot, the unit of a process's start time in /proc."""
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return int(uptime * os.sysconf("SC_CLK_TCK"))


def account_created(uid: int) -> None:
    ACCOUNTS.setdefault(uid, []).append((now(), None))


def account_deleted(uid: int) -> None:
    spans = ACCOUNTS.get(uid, [])
    if spans and spans[-1][1] is None:
        spans[-1] = (spans[-1][0], now())


def _of_our_account(p: Proc) -> bool:
    return any(
        start - 1 <= p.start <= (end if end is not None else p.start)
        for start, end in ACCOUNTS.get(p.uid, [])
    )


def _read(pid: int) -> Proc | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
        cmd = (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return None
    rest = stat[stat.rindex(")") + 2 :].split()
    uid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:"))
    return Proc(pid, int(rest[1]), uid, int(rest[19]), rest[0], cmd.strip())


def processes() -> list[Proc]:
    """Every live process (zombies left out: they have ended, only their entry is left)."""
    found = (_read(int(p)) for p in os.listdir("/proc") if p.isdigit())
    return [p for p in found if p is not None and p.state != "Z"]


def descendants(pid: int) -> list[Proc]:
    """The process `pid` (if alive) and all its descendants."""
    procs = processes()
    children: dict[int, list[Proc]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p)
    out = [p for p in procs if p.pid == pid]
    todo = list(out)
    while todo:
        for child in children.get(todo.pop().pid, []):
            out.append(child)
            todo.append(child)
    return out


def _alive(procs: list[Proc]) -> list[Proc]:
    now = {(p.pid, p.start) for p in processes()}
    return [p for p in procs if (p.pid, p.start) in now]


def end(procs: list[Proc], timeout: float = 10.0) -> list[Proc]:
    """SIGKILL each (by pid), then wait until all are gone; returns any still alive."""
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    left = _alive(procs)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = _alive(left)
    return left


def register_tree(pid: int) -> None:
    """Remember `pid` and its current descendants as started by a test."""
    STARTED.update((p.pid, p.start) for p in descendants(pid))


def kill_tree(pid: int) -> list[Proc]:
    """End `pid`'s descendants (registered, so the session check sees them too)."""
    tree = descendants(pid)
    STARTED.update((p.pid, p.start) for p in tree)
    return end([p for p in tree if p.pid != pid])


def mark_of(pid: int) -> str | None:
    """The MARKER value in a process's environment: which test sshd's session it runs in
    (a session's processes keep it after the sshd child that forked them is gone)."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = MARKER.encode() + b"="
    for item in env.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix) :].decode(errors="replace")
    return None


def kill_marked(mark: str) -> list[Proc]:
    """End every process of the sessions of the test sshd whose mark is `mark`."""
    return end([p for p in processes() if mark_of(p.pid) == mark])


def leftovers() -> list[Proc]:
    """Processes of test-created accounts, started by test servers or running in one of
    their sessions, still alive."""
    return [
        p
        for p in processes()
        if _of_our_account(p) or (p.pid, p.start) in STARTED or mark_of(p.pid) in MARKS
    ]
