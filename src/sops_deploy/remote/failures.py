"""How a failure on the wire is classified and named: the exceptions an SSH/SFTP step
may raise (`IO_ERRORS`), `lost()` turning one into a RemoteError that says what was being
done, `Cancelled` for a connection its caller gave up on while it waited to retry, and
the TCP connect and SSH handshake failures in the words of the fix (`open_socket`,
`handshake_failed`).
"""

from __future__ import annotations

import socket
from typing import TypeVar

import paramiko

from sops_deploy.errors import ConnectError, RemoteError
from sops_deploy.inputs.settings import HostSpec

IO_ERRORS = (OSError, EOFError, paramiko.SSHException)
T = TypeVar("T")
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


def open_socket(spec: HostSpec, timeout: float) -> socket.socket:
    """A TCP connection to the host (TCP_NODELAY), or a ConnectError that names the fix."""
    try:
        sock = socket.create_connection((spec.host, spec.port), timeout=timeout)
    except TimeoutError:
        raise ConnectError(
            f"{spec}: connection to {spec.host} port {spec.port} timed out after {timeout:g}s",
            "check the host and port, and that a firewall lets SSH "
            "through; raise --timeout for slow links",
        ) from None
    except OSError as exc:
        raise ConnectError(
            f"{spec}: cannot connect to {spec.host} port {spec.port}: {exc.strerror or exc}",
            "check the host name and port, and that sshd is running "
            "(see docs/faq.md#faq-cannot-connect)",
        ) from None
    # SSH is request/response: without this, small packets wait for delayed ACKs.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def handshake_failed(
    spec: HostSpec, timeout: float, exc: BaseException, *, timed_out: bool
) -> ConnectError:
    """The key exchange failed: no answer within `timeout`, or the server closed."""
    if timed_out:
        return ConnectError(
            f"{spec}: timed out: no SSH answer from {spec.host} port {spec.port} "
            f"within {timeout:g}s",
            "check that this port is an SSH server and that nothing on the path "
            "stalls the connection; raise --timeout for slow links",
        )
    return ConnectError(
        f"{spec}: SSH handshake failed: {str(exc) or type(exc).__name__} "
        f"({spec.host} port {spec.port} closed the connection)",
        "check that the port is an SSH server and that it is reachable",
    )


def tunnel_failed(target: HostSpec, jump: HostSpec, exc: BaseException) -> ConnectError:
    return ConnectError(
        f"{target}: the jump host {jump} could not open a tunnel to {target.host} "
        f"port {target.port}: {str(exc) or type(exc).__name__}",
        "check that the target is reachable from the jump host and that the jump "
        "host's sshd allows it (AllowTcpForwarding yes)",
    )


def all_ok(replies: list[T | OSError]) -> list[T]:
    """The answers of pipelined requests, or the first one's failure raised."""
    failed = [r for r in replies if isinstance(r, OSError)]
    if failed:
        raise failed[0]
    return replies  # type: ignore[return-value]
