"""How a failure on the wire is classified and named: the exceptions an SSH/SFTP step
may raise (`IO_ERRORS`), `lost()` turning one into a RemoteError that says what was being
done, and `Cancelled` for a connection its caller gave up on while it waited to retry.
"""

from __future__ import annotations

import paramiko

from sops_deploy.errors import RemoteError
from sops_deploy.inputs.settings import HostSpec

IO_ERRORS = (OSError, EOFError, paramiko.SSHException)
PERMISSION_HINT = (
    "let {user} read and write that directory, or — for a root-owned path — pass --become "
    "(the file is written through `sudo -n`; see docs/server-operations.md)"
)


class Cancelled(Exception):
    """The caller gave up on this connection while it was waiting to retry."""


def lost(spec: HostSpec, what: str, exc: BaseException) -> RemoteError:
    """A RemoteError for an SFTP/SSH failure in the middle of `what`."""
    if isinstance(exc, RemoteError):
        return exc
    if isinstance(exc, TimeoutError):
        return RemoteError(
            f"{spec}: timed out while {what}",
            "the server or the network stalled; check them, or raise --timeout",
        )
    if isinstance(exc, PermissionError):
        return RemoteError(
            f"{spec}: permission denied while {what}",
            PERMISSION_HINT.format(user=spec.user or "the login user"),
        )
    why = "the connection was lost" if isinstance(exc, EOFError) else str(exc)
    return RemoteError(
        f"{spec}: {what} failed: {why or type(exc).__name__}",
        "check the connection and the server (disk, permissions), then deploy again",
    )
