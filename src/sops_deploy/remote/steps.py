"""Every network step of a connection bounded by --timeout, with the error that says which
step stalled and what usually causes it.

Paramiko bounds some steps itself (TCP connect, banner, key exchange, channel open) but not
all: a subsystem or exec request waits for the server's reply without a limit, and the SFTP
version exchange reads the channel without one. `watchdog` bounds any step: when the time
is up it closes the transport, which wakes every call blocked on it with an error, and the
step reports a timeout instead. After SFTP has started, each request is bounded by the
channel's own timeout.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import paramiko

from sops_deploy.errors import RemoteError

IO_ERRORS = (OSError, EOFError, paramiko.SSHException)
PROBE = "sops-deploy-can-run-commands"
NO_COMMAND_ANSWER = "the server does not answer a command request; check it, or raise --timeout"

SHELL_HINT = (
    "sshd starts an external sftp-server through the account's login shell: keep the shell's "
    "startup files (~/.bashrc, ~/.profile) quiet for non-interactive shells, or use "
    "`Subsystem sftp internal-sftp` in sshd_config (OpenSSH's advice)"
)


class Watchdog:
    """Closes `transport` if the step inside `with` outlives `seconds`; `fired` tells."""

    def __init__(self, transport: paramiko.Transport, seconds: float) -> None:
        self.fired = threading.Event()
        self._transport = transport
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def _expire(self) -> None:
        self.fired.set()
        self._transport.close()

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def timed_out(where: str, seconds: float, step: str, hint: str) -> RemoteError:
    return RemoteError(f"{where}: timed out after {seconds:g}s while {step}", hint)


@contextlib.contextmanager
def bounded(
    transport: paramiko.Transport, seconds: float, where: str, step: str, hint: str
) -> Iterator[None]:
    """Run one step under a watchdog; a stall becomes `timed out after Ns while STEP`."""
    with Watchdog(transport, seconds) as dog:
        try:
            yield
        except Exception as exc:  # whatever the step made of the closed transport
            if dog.fired.is_set() or isinstance(exc, TimeoutError):
                raise timed_out(where, seconds, step, hint) from None
            raise


def open_sftp(transport: paramiko.Transport, seconds: float, where: str) -> paramiko.SFTPClient:
    """Open the SFTP channel, request the subsystem and exchange versions, each step within
    `seconds`; requests on the client are then bounded by the channel timeout."""
    stall = (
        "the server accepted the connection but its SFTP server does not answer: a login "
        "shell that blocks (e.g. ~/.bashrc waiting for input) or a broken `Subsystem sftp` "
        "line; use `Subsystem sftp internal-sftp` in sshd_config, or raise --timeout"
    )
    with bounded(transport, seconds, where, "opening the SFTP channel", stall):
        chan = transport.open_session(timeout=seconds)
    chan.settimeout(seconds)
    try:
        with bounded(transport, seconds, where, "starting SFTP", stall):
            chan.invoke_subsystem("sftp")
            return paramiko.SFTPClient(chan)
    except paramiko.SFTPError:  # the first bytes were not an SFTP packet
        chan.close()
        raise RemoteError(
            f"{where}: the SFTP stream starts with text that is not SFTP: the account's "
            "login shell printed text before the SFTP server started",
            SHELL_HINT,
        ) from None
    except (paramiko.SSHException, EOFError) as exc:
        raise RemoteError(
            f"{where}: the server refused the SFTP subsystem: {str(exc) or type(exc).__name__}",
            "enable `Subsystem sftp internal-sftp` in sshd_config",
        ) from None


def start_command(
    transport: paramiko.Transport, seconds: float, where: str, command: str
) -> paramiko.Channel:
    """A session channel running `command` (stderr into stdout, stdin at its end), the
    channel open and the exec request within `seconds`."""
    hint = NO_COMMAND_ANSWER
    with bounded(transport, seconds, where, "starting the command", hint):
        chan = transport.open_session(timeout=seconds)
        chan.set_combine_stderr(True)
        chan.exec_command(command)
        chan.shutdown_write()  # a command that reads stdin sees its end
    return chan


def can_run_commands(transport: paramiko.Transport, seconds: float, where: str) -> bool:
    """Whether this account runs commands: `echo PROBE` must print PROBE. An SFTP-only
    account (ForceCommand internal-sftp, a nologin or git shell) or a server that refuses
    exec requests does not."""
    hint = NO_COMMAND_ANSWER
    with bounded(transport, seconds, where, "checking that commands can run", hint):
        try:
            chan = transport.open_session(timeout=seconds)
        except paramiko.ChannelException:
            return False
        try:
            chan.settimeout(seconds)
            try:
                chan.exec_command(f"echo {PROBE}")
            except paramiko.SSHException:
                if not transport.is_active():
                    raise
                return False  # exec refused
            chan.shutdown_write()  # internal-sftp waits for input: let it see the end
            out = read_output(chan)
        finally:
            chan.close()
    return PROBE.encode() in out.splitlines()


def read_output(chan: paramiko.Channel, limit: int = 65536) -> bytes:
    """A command's standard output until it ends, at most `limit` bytes (each read bounded
    by the channel's timeout)."""
    out = bytearray()
    while len(out) < limit:
        data = chan.recv(4096)
        if not data:
            break
        out += data
    return bytes(out)
