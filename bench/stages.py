"""Connection stages, ours against OpenSSH's, so a TCP stall shows as one slow stage.

Owns the per-stage timing of one SSH + SFTP connection to a local sshd:

  tcp      TCP connect
  banner   the server's version banner read
  kex      key exchange done (NEWKEYS), host key checked
  auth     public-key authentication accepted
  channel  session channel open confirmed
  sftp     SFTP subsystem started and versions exchanged
  request  the first request answered (a stat of the target file)

For sops-deploy the stages are the real `remote.Connection.open()` and its SFTP client, timed
in this process by wrapping the calls it makes (socket.create_connection, the
Transport's banner check, start_client, auth_publickey, open_session, SFTPClient(),
whose constructor exchanges versions); nothing in src/ changes. For OpenSSH they are the
arrival times of `sftp -vv`'s debug lines (one process: `sftp -vv -b BATCH` runs `ssh -vv`), with
`-F none` and a clean HOME. A stage that the client does not report is left out.
bench/table.py renders the table and marks stalls.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

STAGES = ("tcp", "banner", "kex", "auth", "channel", "sftp", "request")

# The first `sftp -vv` line that marks the end of each stage (OpenSSH 8.x-9.x wording).
OPENSSH_MARKERS = (
    ("start", "debug1: Connecting to "),
    ("tcp", "debug1: Connection established"),
    ("banner", "debug1: Remote protocol version"),
    ("kex", "debug1: SSH2_MSG_NEWKEYS received"),
    ("auth", "Authenticated to "),
    ("channel", "channel_input_open_confirmation"),
    ("sftp", "debug2: Remote version:"),
)

# Stages that are only a round trip or two on loopback (no key-exchange CPU, no sshd
# fork): one taking longer than this is waiting on the network stack, e.g. a delayed ACK
# (40 ms on Linux) or a reply the server holds back, and is printed as a stall.
STALL_STAGES = ("tcp", "auth", "channel", "sftp", "request")
STALL_MS = 25.0


def stage_durations(marks: dict[str, float]) -> dict[str, float]:
    """Durations (ms) of each stage from the time each one ended, from `start`."""
    out: dict[str, float] = {}
    previous = marks.get("start")
    for stage in STAGES:
        if stage in marks and previous is not None:
            out[stage] = (marks[stage] - previous) * 1000
            previous = marks[stage]
    return out


def openssh_marks(lines: list[tuple[float, str, str]]) -> dict[str, float]:
    """End times of the stages from (time, stream, line) of `sftp -vv -b`."""
    marks: dict[str, float] = {}
    for at, stream, line in lines:
        if stream == "out":
            # the batch echo is "sftp> ls …"; the next stdout line is the answer
            if not line.startswith("sftp>") and "request" not in marks and "sftp" in marks:
                marks["request"] = at
            continue
        for stage, marker in OPENSSH_MARKERS:
            if stage not in marks and marker in line:
                marks[stage] = at
    return marks


def openssh_once(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run `sftp -vv …` once; stage end times from its output lines as they arrive."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    assert proc.stderr is not None
    lines: list[tuple[float, str, str]] = []
    rest = {"out": b"", "err": b""}
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, "out")
        sel.register(proc.stderr, selectors.EVENT_READ, "err")
        while sel.get_map():
            for key, _ in sel.select():
                data = os.read(key.fd, 65536)
                now = time.perf_counter() - start
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                *done, rest[key.data] = (rest[key.data] + data).split(b"\n")
                lines.extend((now, key.data, d.decode(errors="replace")) for d in done)
    if proc.wait() != 0:
        raise RuntimeError(f"sftp failed: {[line for _, _, line in lines][-3:]}")
    return openssh_marks(lines)


@contextlib.contextmanager
def _wrapped(owner: Any, name: str, stage: str, marks: dict[str, float]) -> Iterator[None]:
    """Record when `owner.name` (a function or method) returns, the first time."""
    original = getattr(owner, name, None)
    if original is None:
        yield
        return

    def timed(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        marks.setdefault(stage, time.perf_counter())
        return result

    setattr(owner, name, timed)
    try:
        yield
    finally:
        setattr(owner, name, original)


def paramiko_once(open_connection: Callable[[], Any], path: str) -> dict[str, float]:
    """Open our Connection once (with its SFTP client) and stat `path`; stage end times."""
    import paramiko

    marks: dict[str, float] = {}
    hooks = [
        (socket, "create_connection", "tcp"),
        (paramiko.Transport, "_check_banner", "banner"),
        (paramiko.Transport, "start_client", "kex"),
        (paramiko.Transport, "auth_publickey", "auth"),
        (paramiko.Transport, "open_session", "channel"),
        (paramiko.SFTPClient, "__init__", "sftp"),  # the version exchange is in the constructor
    ]
    with contextlib.ExitStack() as stack:
        for owner, name, stage in hooks:
            stack.enter_context(_wrapped(owner, name, stage, marks))
        start = time.perf_counter()
        conn = open_connection()
        try:
            conn.stat(path)
            marks["request"] = time.perf_counter()
        finally:
            conn.close()
    return {"start": 0.0, **{k: v - start for k, v in marks.items()}}


def medians(samples: list[dict[str, float]]) -> dict[str, float]:
    """Median duration (ms) of each stage over the runs that report it."""
    per_run = [stage_durations(s) for s in samples]
    return {
        stage: statistics.median(d[stage] for d in per_run if stage in d)
        for stage in STAGES
        if any(stage in d for d in per_run)
    }


def measure(
    server: Any, client_key: Path, known_hosts: Path, home: Path, runs: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Both clients against one server, `runs` times each after a warm-up: stage medians."""
    from sops_deploy.inputs.settings import HostSpec
    from sops_deploy.remote import Connection, Credentials, Options, Trust

    spec = HostSpec("127.0.0.1", server.port, server.user)
    creds = Credentials(key_text=client_key.read_text())
    trust = Trust(known_hosts=str(known_hosts))

    def open_connection() -> Connection:
        conn = Connection(spec, Options(creds, trust, default_user=server.user, timeout=10))
        conn.open()
        return conn

    batch = home / "sftp-batch"
    batch.write_text("ls -l .env\n")
    argv = [
        "sftp",
        "-vv",
        "-F",
        "none",
        "-i",
        str(client_key),
        "-P",
        str(server.port),
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-b",
        str(batch),
        f"{server.user}@127.0.0.1",
    ]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    paramiko_once(open_connection, ".env")  # warm-up: imports, first-use costs
    openssh_once(argv, env)
    ours = [paramiko_once(open_connection, ".env") for _ in range(runs)]
    theirs = [openssh_once(argv, env) for _ in range(runs)]
    return medians(ours), medians(theirs)


if __name__ == "__main__":
    sys.exit("run through bench/bench.py")
