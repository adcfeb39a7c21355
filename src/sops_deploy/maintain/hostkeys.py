"""Fetch a server's SSH host key (handshake only, no login) to show and pin it.

Trust on first use, made explicit: the fingerprint is shown so the user can compare it
with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server before it is pinned.
"""

from __future__ import annotations

import socket

import paramiko

from sops_deploy.errors import RemoteError
from sops_deploy.inputs.settings import HostSpec


def fetch(spec: HostSpec, timeout: float = 20.0) -> paramiko.PKey:
    """The host key the server at `spec` presents in an SSH handshake (no authentication)."""
    try:
        sock = socket.create_connection((spec.host, spec.port), timeout=timeout)
    except OSError as exc:
        raise RemoteError(
            f"{spec}: cannot connect: {exc.strerror or exc}",
            "check the host name and port, and that sshd is running "
            "(see README#faq-cannot-connect)",
        ) from None
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise RemoteError(
            f"{spec}: SSH handshake failed: {exc or type(exc).__name__}",
            "check that the port is an SSH server (see README#faq-cannot-connect)",
        ) from None
    finally:
        transport.close()


def known_hosts_line(spec: HostSpec, key: paramiko.PKey) -> str:
    """The OpenSSH known_hosts line that pins `key` for `spec`."""
    return f"{spec.known_hosts_name} {key.get_name()} {key.get_base64()}"
