"""After the write: the post-deploy command (run on the deploy's own SSH connection) and
the audit trail (one JSON line per deploy in `<path>.deploy.log`).

Both only report key names, exit statuses and the command's own output; the caller masks
that output through the Reporter before anything prints.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import paramiko
from paramiko.sftp import CMD_HANDLE, CMD_OPEN, SFTP_FLAG_APPEND, SFTP_FLAG_CREATE, SFTP_FLAG_WRITE

from sops_deploy.remote import Connection
from sops_deploy.remote_ops import IO_ERRORS, lost

AUDIT_SUFFIX = ".deploy.log"
OUTPUT_TAIL_LINES = 20


# --- the post-deploy command -----------------------------------------------------------


@dataclass
class CommandRun:
    """One run of the post-deploy command: its exit status and the last lines it printed."""

    label: str  # "post-command" or "post-command after rollback"
    exit_status: int | None
    output_tail: list[str] = field(default_factory=list)
    seconds: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out

    def describe(self) -> str:
        if self.timed_out:
            return f"{self.label}: timed out after {self.seconds:.0f}s"
        return f"{self.label}: exit {self.exit_status} in {self.seconds:.1f}s"


def run_command(
    conn: Connection, directory: str, command: str, timeout: float, label: str
) -> CommandRun:
    """Run `cd DIR && COMMAND` on an exec channel of the same transport; stdout+stderr
    combined, the last lines kept. The caller masks them before anything prints."""
    if conn.transport is None:
        raise RuntimeError("connection is not open")
    started = time.monotonic()
    try:
        chan = conn.transport.open_session(timeout=timeout)
    except IO_ERRORS as exc:
        raise lost(conn.spec, "opening a channel for the post-command", exc) from None
    buf = bytearray()
    timed_out = False
    try:
        chan.set_combine_stderr(True)
        chan.settimeout(0.2)
        chan.exec_command(f"cd {shlex.quote(directory)} && {command}")
        while True:
            try:
                data = chan.recv(32768)
            except TimeoutError:
                data = None
            if data:
                buf += data
                del buf[:-65536]
                continue
            if data == b"" and chan.exit_status_ready():
                break
            if time.monotonic() - started > timeout:
                timed_out = True
                break
        status = None if timed_out else chan.recv_exit_status()
    except IO_ERRORS as exc:
        raise lost(conn.spec, "running the post-command", exc) from None
    finally:
        chan.close()
    lines = buf.decode("utf-8", "replace").splitlines()[-OUTPUT_TAIL_LINES:]
    return CommandRun(
        label, status, [ln[:300] for ln in lines], time.monotonic() - started, timed_out
    )


# --- the audit trail -------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_actor() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return os.environ.get("USER") or "unknown"


@functools.cache
def source_commit() -> str | None:
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def run_url() -> str | None:
    env = os.environ
    parts = [env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    if not all(parts):
        return None
    return f"{parts[0]}/{parts[1]}/actions/runs/{parts[2]}"


def audit_record(**fields: Any) -> dict[str, Any]:
    """One audit line: when, who, from which commit and run, and what happened (names only)."""
    return {
        "time": _now(),
        "actor": os.environ.get("GITHUB_ACTOR") or local_actor(),
        "commit": source_commit(),
        "run_url": run_url(),
        **fields,
    }


def append_audit(conn: Connection, path: str, record: dict[str, Any]) -> None:
    """Append one JSON line to `<path>.deploy.log`, created 0600."""
    log = path + AUDIT_SUFFIX
    attrs = paramiko.SFTPAttributes()
    attrs.st_mode = 0o600
    flags = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_APPEND
    kind, msg = conn.sftp._request(CMD_OPEN, log, flags, attrs)  # type: ignore[attr-defined]
    if kind != CMD_HANDLE or msg is None:
        raise paramiko.SFTPError("expected a file handle")
    with paramiko.SFTPFile(conn.sftp, msg.get_binary(), "ab") as fh:
        fh.write((json.dumps(record, sort_keys=True) + "\n").encode())
    attr = conn.sftp.stat(log)
    if attr.st_mode is not None and attr.st_mode & 0o077:
        conn.sftp.chmod(log, 0o600)
