"""The wire to one server: socket, jump host, retries with backoff, host-key trust (via
`trust`), authentication, timeouts, and every SFTP request, as `Connection` methods that
speak in paths and bytes. The only module that touches Paramiko's private API or the raw
SFTP client; everything is bounded by `timeout` (the steps Paramiko leaves unbounded under
a watchdog, `steps`). It never decides what to write."""

from __future__ import annotations

import contextlib
import logging
import posixpath
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import paramiko
from paramiko.common import cMSG_IGNORE
from paramiko.message import Message
from paramiko.sftp import (
    CMD_EXTENDED,
    CMD_EXTENDED_REPLY,
    CMD_HANDLE,
    CMD_OPEN,
    SFTP_FLAG_APPEND,
    SFTP_FLAG_WRITE,
)

from sops_deploy.errors import ConnectError, RemoteError
from sops_deploy.inputs.settings import HostSpec
from sops_deploy.remote import become, identities, listing, steps
from sops_deploy.remote.credentials import Credentials
from sops_deploy.remote.failures import IO_ERRORS, Cancelled, lost
from sops_deploy.remote.trust import (
    Trust,
    another_type_may_be_pinned,
    pinned_or_first,
    verify_host_key,
)
from sops_deploy.ssh import knownhosts
from sops_deploy.ssh.sshconfig import Resolved, SshSetup

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 16.0
KEEPALIVE_SECONDS = 15
HOSTKEYS_REQUEST = "hostkeys-00@openssh.com"

# Paramiko's transport-thread tracebacks never reach stderr: we report every failure.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Options:
    """How to reach a host: identity, trust, default user, bounds, retries, jump host; and
    for keys as `ssh` finds them, HOME/agent (`ssh`) and ssh_config's answers (`resolved`)."""

    creds: Credentials
    trust: Trust
    default_user: str
    timeout: float = 20.0  # defaults.TIMEOUT (a test keeps them equal)
    retries: int = 0
    jump: HostSpec | None = None
    ssh: SshSetup | None = None
    resolved: Resolved | None = None
    jump_resolved: Resolved | None = None
    ci: bool = False
    become: bool = False  # SFTP through `sudo -n sftp-server`, commands under sudo (`become`)
    become_sftp_server: str | None = None


class _Transport(paramiko.Transport):
    """Answers sshd's `hostkeys-00@openssh.com` (sent after authentication, no reply
    wanted) with SSH_MSG_IGNORE: unanswered, its segment waits for a delayed ACK (~40 ms)
    and Nagle holds sshd's next reply, the first channel open, behind it."""

    def _parse_global_request(self, m: Message) -> None:
        kind = m.get_text()
        m.rewind()
        super()._parse_global_request(m)  # type: ignore[misc]
        if kind == HOSTKEYS_REQUEST and not self.server_mode:
            ignore = Message()
            ignore.add_byte(cMSG_IGNORE)
            ignore.add_string(b"")
            self._send_message(ignore)  # type: ignore[attr-defined]


class Connection:
    """One SSH transport (through the jump host, if any) and one SFTP session to one host.
    `open()` retries connection errors `options.retries` times, waiting 1, 2, 4 … 16 s
    unless `cancel` is set meanwhile (`Cancelled`); nothing is retried once open."""

    def __init__(
        self,
        spec: HostSpec,
        options: Options,
        *,
        warn: Callable[[str], None] = lambda _m: None,
        cancel: threading.Event | None = None,
        sftp: bool = True,
    ) -> None:
        self.spec = spec
        self.user = spec.user or options.default_user
        self.timeout = options.timeout
        self.become = options.become and sftp  # a jump host is never become'd
        self._options = options
        self._warn = warn
        self._cancel = cancel if cancel is not None else threading.Event()
        self._want_sftp = sftp
        self._hop: Connection | None = None
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._offerable: tuple[str, ...] = ()
        self.host_key: paramiko.PKey | None = None  # the verified key, once open

    def __enter__(self) -> Connection:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- opening and closing -----------------------------------------------------------

    def open(self) -> None:
        attempt = 0
        while True:
            try:
                self._open_once()
                return
            except ConnectError as exc:
                self.close()
                if attempt >= self._options.retries:
                    raise
                delay = min(BACKOFF_FIRST * 2**attempt, BACKOFF_MAX)
                attempt += 1
                self._warn(f"{exc.message}; retry {attempt}/{self._options.retries} in {delay:g}s")
                if self._cancel.wait(delay):
                    raise Cancelled from None
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        if self._sftp is not None:
            with contextlib.suppress(*IO_ERRORS):
                self._sftp.close()  # raises when the connection is already gone
            self._sftp = None
        self._close_transport()
        if self._hop is not None:
            self._hop.close()
            self._hop = None

    def _close_transport(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _open_once(self) -> None:
        options = self._options
        # The keys first: a bad SSH_PRIVATE_KEY (or none at all) touches no server.
        found = identities.KeyInputs.of(options.creds, options.ssh, options.ci, options.timeout)
        with found.gather(options.resolved) as keys:
            if not keys.keys:
                raise identities.nothing_to_offer(keys, ci=options.ci)
            self._connect_and_login(keys)

    def _connect_and_login(self, keys: identities.Identities) -> None:
        options = self._options
        tunnel: paramiko.Channel | None = None
        if options.jump is not None:
            hop = replace(
                options, retries=0, jump=None, resolved=options.jump_resolved, jump_resolved=None
            )
            self._hop = Connection(options.jump, hop, warn=self._warn, sftp=False)
            self._hop.open()
            tunnel = self._hop._tunnel(self.spec)
        shown = [self._handshake(tunnel, ())]
        # A tunnel is used once; a direct connection asks again for other key types.
        while tunnel is None and another_type_may_be_pinned(shown, self._offerable, options.trust):
            self._close_transport()
            try:
                shown.append(self._handshake(None, tuple(k.get_name() for k in shown)))
            except ConnectError:  # no other host key type that the server and we share
                break
        server_key, others = pinned_or_first(shown, options.trust)
        verify_host_key(self.spec, server_key, options.trust, self._warn, others)
        self.host_key = server_key
        transport = self._live_transport  # the key was pinned, so this is the open one
        self._authenticate(transport, keys)
        if self._want_sftp:
            self._open_sftp(transport)

    def _handshake(
        self, tunnel: paramiko.Channel | None, refused: tuple[str, ...]
    ) -> paramiko.PKey:
        """Connect (or use `tunnel`) and run the key exchange, offering host key types in
        the order `knownhosts.key_type_preference` gives (known first, `refused` left out)."""
        spec, trust = self.spec, self._options.trust
        transport = _Transport(tunnel if tunnel is not None else self._socket())
        self._transport = transport
        transport.set_keepalive(KEEPALIVE_SECONDS)
        transport.banner_timeout = self.timeout
        security = transport.get_security_options()
        self._offerable = tuple(security.key_types)
        known = knownhosts.known_key_types(trust.known, spec.host, spec.port)
        security.key_types = knownhosts.key_type_preference(security.key_types, known, refused)
        started = time.monotonic()
        try:
            transport.start_client(timeout=self.timeout)
            return transport.get_remote_server_key()  # raises if start_client timed out
        except IO_ERRORS as exc:
            self.close()
            if time.monotonic() - started >= self.timeout * 0.9:
                raise ConnectError(
                    f"{spec}: timed out: no SSH answer from {spec.host} port {spec.port} "
                    f"within {self.timeout:g}s",
                    "check that this port is an SSH server and that nothing on the path "
                    "stalls the connection; raise --timeout for slow links",
                ) from None
            raise ConnectError(
                f"{spec}: SSH handshake failed: {str(exc) or type(exc).__name__} "
                f"({spec.host} port {spec.port} closed the connection)",
                "check that the port is an SSH server and that it is reachable",
            ) from None

    def _socket(self) -> socket.socket:
        spec = self.spec
        try:
            sock = socket.create_connection((spec.host, spec.port), timeout=self.timeout)
        except TimeoutError:
            raise ConnectError(
                f"{spec}: connection to {spec.host} port {spec.port} timed out after "
                f"{self.timeout:g}s",
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

    def _authenticate(self, transport: paramiko.Transport, keys: identities.Identities) -> None:
        """Offer each key in OpenSSH's order; the first the server accepts logs in. The
        whole exchange is bounded by --timeout (the watchdog speaks before Paramiko's own)."""
        transport.auth_timeout = 2 * self.timeout
        stalled = "the server stopped answering during authentication; check it, or raise --timeout"
        try:
            with steps.bounded(transport, self.timeout, str(self.spec), "authenticating", stalled):
                identities.authenticate(transport, self.user, keys, str(self.spec))
        except RemoteError:
            self.close()
            raise

    def _open_sftp(self, transport: paramiko.Transport) -> None:
        where, program = str(self.spec), self._options.become_sftp_server
        if self.become:  # `sudo -n sftp-server` on an exec channel
            self._sftp = become.open_sftp(transport, self.timeout, where, self.user, program)
        else:
            self._sftp = steps.open_sftp(transport, self.timeout, where)

    def _tunnel(self, target: HostSpec) -> paramiko.Channel:
        """A direct-tcpip channel from this (jump) host to `target`."""
        try:
            return self._live_transport.open_channel(
                "direct-tcpip", (target.host, target.port), ("127.0.0.1", 0), timeout=self.timeout
            )
        except (*IO_ERRORS, paramiko.ChannelException) as exc:
            raise ConnectError(
                f"{target}: the jump host {self.spec} could not open a tunnel to {target.host} "
                f"port {target.port}: {str(exc) or type(exc).__name__}",
                "check that the target is reachable from the jump host and that the jump "
                "host's sshd allows it (AllowTcpForwarding yes)",
            ) from None

    @property
    def _live_transport(self) -> paramiko.Transport:
        if self._transport is None:
            raise RuntimeError("connection is not open")
        return self._transport

    @property
    def _client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            raise RuntimeError("connection is not open")
        return self._sftp

    # --- paths and attributes ----------------------------------------------------------

    def resolve(self, path: str) -> str:
        """An absolute remote path as the server resolves it: `~/x` relative to the login
        directory, the directory's symlinks and `..` resolved by the server (`lnk/../x` is
        where the link's target is, not where the text says); a missing directory is left
        as written, for the caller to report."""
        if path.startswith("~/"):
            path = posixpath.join(self._client.normalize("."), path[2:])
        directory, name = posixpath.split(path)
        try:
            return posixpath.join(self._client.normalize(directory or "/"), name)
        except IO_ERRORS:
            return path

    def realpath(self, path: str) -> str:
        """`path` with every symlink resolved, by the server."""
        return self._client.normalize(path)

    def stat(self, path: str) -> paramiko.SFTPAttributes:
        return self._client.stat(path)

    def lstat(self, path: str) -> paramiko.SFTPAttributes:
        return self._client.lstat(path)

    def listdir(self, directory: str, keep: Callable[[str], bool] = bool) -> list[str]:
        """The names in `directory` that `keep` wants, bounded (listing.py)."""
        request = self._client._request  # type: ignore[attr-defined]
        return listing.names(request, directory, keep, seconds=self.timeout, where=str(self.spec))

    def chmod(self, path: str, mode: int) -> None:
        self._client.chmod(path, mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        self._client.chown(path, uid, gid)

    def remove(self, path: str) -> None:
        self._client.remove(path)

    def rename(self, old: str, new: str) -> None:
        """Rename, failing when `new` exists (SSH_FXP_RENAME; OpenSSH links, then unlinks)."""
        self._client.rename(old, new)

    def posix_rename(self, old: str, new: str) -> None:
        """Rename over `new` atomically (posix-rename@openssh.com)."""
        self._client.posix_rename(old, new)

    def hardlink(self, existing: str, new: str) -> bool:
        """Hard-link `new` to `existing` (hardlink@openssh.com); False where not supported."""
        try:
            self._client._request(CMD_EXTENDED, "hardlink@openssh.com", existing, new)  # type: ignore[attr-defined]
        except IO_ERRORS:
            return False
        return True

    def free_bytes(self, directory: str) -> int:
        """Space left for us under `directory` (statvfs@openssh.com); huge if unknown."""
        try:
            kind, msg = self._client._request(  # type: ignore[attr-defined]
                CMD_EXTENDED, "statvfs@openssh.com", directory
            )
        except IO_ERRORS:
            return 1 << 62
        if kind != CMD_EXTENDED_REPLY or msg is None:
            return 1 << 62
        _bsize, frsize, _blocks, _bfree, bavail = (msg.get_int64() for _ in range(5))
        return int(frsize * bavail)

    # --- file contents -----------------------------------------------------------------

    def open_file(self, path: str, flags: int, mode: int | None = None) -> paramiko.SFTPFile:
        """An SFTP handle on `path` opened with `flags` (SFTP_FLAG_*), `mode` sent in the
        OPEN request itself (Paramiko's `open` sends none); see `safefile` for the rules."""
        attrs = paramiko.SFTPAttributes()
        if mode is not None:
            attrs.st_mode = mode
        kind, msg = self._client._request(CMD_OPEN, path, flags, attrs)  # type: ignore[attr-defined]
        if kind != CMD_HANDLE or msg is None:
            raise paramiko.SFTPError("expected a file handle")
        text = "ab" if flags & SFTP_FLAG_APPEND else "wb" if flags & SFTP_FLAG_WRITE else "rb"
        return paramiko.SFTPFile(self._client, msg.get_binary(), text)

    def check_written(self, handle: paramiko.SFTPFile) -> None:
        """Raise the failure Paramiko kept from a pipelined write (ENOSPC…) without raising."""
        saved = getattr(handle, "_saved_exception", None)
        if isinstance(saved, BaseException):
            raise saved

    # --- commands ----------------------------------------------------------------------

    def run(self, command: str, timeout: float) -> paramiko.Channel:
        """A session channel running `command` (stdout and stderr combined, no stdin);
        opening it and the exec request are bounded by `timeout`."""
        hint = "the server does not answer a command request; check it, or raise --timeout"
        transport = self._live_transport
        try:
            with steps.bounded(transport, timeout, str(self.spec), "starting the command", hint):
                chan = transport.open_session(timeout=timeout)
                chan.set_combine_stderr(True)
                chan.exec_command(command)
                chan.shutdown_write()  # a command that reads stdin sees its end
        except IO_ERRORS as exc:
            raise lost(self.spec, "starting the post-command", exc) from None
        return chan

    def can_run_commands(self) -> bool:
        """Whether this account may run commands (not SFTP-only); see `steps`."""
        return steps.can_run_commands(self._live_transport, self.timeout, str(self.spec))
