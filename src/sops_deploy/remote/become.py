"""`--become`: a login that is not root writes root-owned paths through `sudo -n`.

The SFTP session is the server's own sftp-server program run as root under `sudo -n` on
an exec channel (never a prompt: `-n`, and no TTY is asked for), so every rule of the
normal path holds unchanged — the temp file 0600 from its first byte, no link followed,
the lock, backup, audit line, posix-rename — and every step is bounded by --timeout.
Commands (post-command, validate-command) run as `sudo -n /bin/sh -c '…'`.

The sftp-server's path is --become-sftp-server, else what the server's sshd_config names
in its `Subsystem sftp` line (when that is a program, not internal-sftp), else the first
of the usual places that exists. A chrooted SFTP-only account cannot run sudo: --become
is refused for it up front. When sudo asks for a password, is missing, or refuses, the
host fails with what to do (a NOPASSWD rule for exactly this command, or logging in as
the file's owner); nothing is written. Server text is never quoted in these messages.
"""

from __future__ import annotations

import shlex

import paramiko

from sops_deploy.errors import RemoteError
from sops_deploy.remote import steps

SHELL = "/bin/sh"
CANDIDATES = (
    "/usr/lib/openssh/sftp-server",  # Debian, Ubuntu
    "/usr/libexec/openssh/sftp-server",  # Fedora, RHEL, Alpine
    "/usr/lib/ssh/sftp-server",  # Arch, SUSE
    "/usr/libexec/sftp-server",  # macOS, BSDs
)
_FIND = (
    'p=$(awk \'$1=="Subsystem" && $2=="sftp" {print $3; exit}\' /etc/ssh/sshd_config '
    '2>/dev/null); case "$p" in /*) [ -x "$p" ] && { echo "$p"; exit 0; };; esac; '
    f"for p in {' '.join(CANDIDATES)}; do "
    '[ -x "$p" ] && { echo "$p"; exit 0; }; done; exit 1'
)


def wrap(command: str) -> str:
    """`command` run by root's shell through `sudo -n` (no prompt, no TTY)."""
    return f"sudo -n {SHELL} -c {shlex.quote(command)}"


def sudoers_hint(user: str, program: str) -> str:
    return (
        f"let {user} run exactly this without a password — a sudoers rule such as "
        f"`{user} ALL=(root) NOPASSWD: {program}` in /etc/sudoers.d/ (add `, {SHELL}` for "
        "--post-command or --validate-command) — or log in as the file's owner and drop "
        "--become"
    )


def _exec(transport: paramiko.Transport, command: str, seconds: float) -> tuple[int, bytes, bytes]:
    """Run `command`; (exit status, stdout, stderr), each at most 64 KiB."""
    chan = transport.open_session(timeout=seconds)
    try:
        chan.settimeout(seconds)
        chan.exec_command(command)
        chan.shutdown_write()
        out = steps.read_output(chan)
        err = chan.recv_stderr(65536) if chan.recv_stderr_ready() else b""
        return chan.recv_exit_status(), out, err
    finally:
        chan.close()


def find_sftp_server(transport: paramiko.Transport, seconds: float, where: str) -> str:
    hint = steps.NO_COMMAND_ANSWER
    with steps.bounded(transport, seconds, where, "finding the sftp-server for --become", hint):
        status, out, _err = _exec(transport, _FIND, seconds)
    found = out.decode("utf-8", "replace").strip().splitlines()
    if status != 0 or not found or not found[-1].startswith("/"):
        raise RemoteError(
            f"{where}: --become: no sftp-server program found on the server (sshd_config "
            f"names none, and none of {', '.join(CANDIDATES)} exists)",
            "pass --become-sftp-server PATH (where the openssh-sftp-server package put it)",
        )
    return found[-1]


def open_sftp(
    transport: paramiko.Transport, seconds: float, where: str, user: str, program: str | None
) -> paramiko.SFTPClient:
    """An SFTP session served by `sudo -n PROGRAM` (root), each step within `seconds`."""
    if not steps.can_run_commands(transport, seconds, where):
        raise RemoteError(
            f"{where}: --become needs an account that may run commands, and {user} is an "
            "SFTP-only account here (ForceCommand internal-sftp, a chroot, a nologin shell): "
            "sudo cannot run; nothing was written",
            f"drop --become and let {user} write the directory, or log in with an account "
            "that may run sudo",
        )
    program = program or find_sftp_server(transport, seconds, where)
    stall = "sudo or the sftp-server it starts does not answer; check them, or raise --timeout"
    with steps.bounded(transport, seconds, where, "starting sftp-server under sudo", stall):
        chan = transport.open_session(timeout=seconds)
    chan.settimeout(seconds)
    try:
        with steps.bounded(transport, seconds, where, "starting sftp-server under sudo", stall):
            chan.exec_command(f"sudo -n -- {shlex.quote(program)}")
            return paramiko.SFTPClient(chan)
    except (paramiko.SFTPError, paramiko.SSHException, EOFError, OSError):
        reason = _why(chan)
        chan.close()
        raise RemoteError(
            f"{where}: --become: `sudo -n {program}` did not start an SFTP session: "
            f"{reason}; nothing was written",
            sudoers_hint(user, program),
        ) from None


def _why(chan: paramiko.Channel) -> str:
    """What sudo's exit says, in our words (its stderr is classified, never quoted)."""
    err = b""
    try:
        while chan.recv_stderr_ready() and len(err) < 8192:
            err += chan.recv_stderr(4096)
        status = chan.recv_exit_status() if chan.exit_status_ready() else None
    except (OSError, EOFError, paramiko.SSHException):
        status = None
    text = err.decode("utf-8", "replace").lower()
    if "password" in text or "terminal is required" in text:
        return "sudo wants a password (sudo -n never asks for one)"
    if status == 127 or "not found" in text:
        return "sudo is not installed there (or the sftp-server path does not exist)"
    if "not allowed" in text or "not in the sudoers" in text or "may not run" in text:
        return f"sudo does not allow this user to run it as root (exit {status})"
    return f"it exited with status {status}" if status is not None else "the channel closed"
