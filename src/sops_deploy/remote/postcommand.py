"""The post-deploy command: run on the deploy's own SSH connection, in the directory of
the file, after the new file is in place (and again after a rollback).

A signal (SIGINT/SIGTERM: the connection's cancel token) stops the wait at once
(`interrupt.Interrupted`). Only its exit
status and last lines are kept; the caller masks them through the Reporter
before anything prints.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field

from sops_deploy.remote.connection import Connection
from sops_deploy.remote.failures import IO_ERRORS, lost

OUTPUT_TAIL_LINES = 20
OUTPUT_KEEP_BYTES = 65536


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
    """`cd DIR && COMMAND` on a session channel of the deploy's connection; stdout and
    stderr combined, the last lines kept; stopped (timed out) after `timeout` seconds."""
    started = time.monotonic()
    line = f"cd {shlex.quote(directory)} && {command}"
    if conn.become:  # --become: root's shell through `sudo -n`, as the files are written
        from sops_deploy.remote.become import wrap

        line = wrap(line)
    chan = conn.run(line, min(timeout, conn.timeout))
    buf = bytearray()
    timed_out = False
    try:
        chan.settimeout(0.2)
        while True:
            if conn.cancel.is_set():  # stop waiting; the channel is closed below
                raise conn.cancel.interrupted(
                    f"{conn.spec}: interrupted by {conn.cancel.signal_name} during the "
                    f"{label}; the new file stays in place",
                    "check the service on the server, then deploy again",
                )
            try:
                data = chan.recv(32768)
            except TimeoutError:
                data = None
            if data:
                buf += data
                del buf[:-OUTPUT_KEEP_BYTES]
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
    # Lines are cut by the Reporter, after redaction: a cut here could split a value.
    return CommandRun(label, status, lines, time.monotonic() - started, timed_out)
