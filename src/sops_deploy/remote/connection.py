"""The wire to one server: socket, jump host, retries with backoff, host-key trust (via
`trust`), authentication, timeouts, and every SFTP request, as `Connection` methods that
speak in paths and bytes. The only module that touches Paramiko's private API or the raw
SFTP client; everything is bounded by `timeout` (the steps Paramiko leaves unbounded under
a watchdog, `steps`). It never decides what to write."""

from __future__ import annotations

import contextlib
import logging
import posixpath
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import paramiko
from paramiko import sftp as wire
from paramiko.common import cMSG_IGNORE
from paramiko.message import Message

from sops_deploy.errors import ConnectError, RemoteError
from sops_deploy.inputs.settings import HostSpec
from sops_deploy.interrupt import Cancel
from sops_deploy.remote import become, failures, identities, listing, steps
from sops_deploy.remote.failures import IO_ERRORS, Cancelled, lost
from sops_deploy.remote.reach import Options
from sops_deploy.remote.trust import another_type_may_be_pinned, pinned_or_first, verify_host_key
from sops_deploy.ssh import knownhosts

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 16.0
KEEPALIVE_SECONDS = 15
READ_CHUNK = 32768  # bytes per READ request (Paramiko's and OpenSSH's usual size)
HOSTKEYS_REQUEST = "hostkeys-00@openssh.com"
Attrs = paramiko.SFTPAttributes
Ask = tuple[object, ...]  # an SFTP request: its type, then its fields
Reply = tuple[int | None, Message | None]  # (None, None): an EOF status

# Paramiko's transport-thread tracebacks never reach stderr: we report every failure.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


class _Transport(paramiko.Transport):
    """Answers sshd's `hostkeys-00@openssh.com` with SSH_MSG_IGNORE: unanswered, it waits
    for a delayed ACK (~40 ms) and Nagle holds sshd's next reply behind it."""

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
    unless `abandon` is set meanwhile (`Cancelled`); nothing is retried once open.
    `cancel` is the run's cancel token (`interrupt.Cancel`, set by a signal): the remote
    layers given this connection stop at their next safe point once it is set."""

    def __init__(
        self,
        spec: HostSpec,
        options: Options,
        *,
        warn: Callable[[str], None] = lambda _m: None,
        abandon: threading.Event | None = None,
        cancel: Cancel | None = None,
        sftp: bool = True,
    ) -> None:
        self.spec = spec
        self.user = spec.user or options.default_user
        self.timeout = options.timeout
        self.become = options.become and sftp  # a jump host is never become'd
        self._options = options
        self._warn = warn
        self._abandon = abandon if abandon is not None else threading.Event()
        self.cancel = cancel if cancel is not None else Cancel()
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
                if self._abandon.wait(delay):
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
        sock = tunnel if tunnel is not None else failures.open_socket(self.spec, self.timeout)
        transport = _Transport(sock)
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
            timed_out = time.monotonic() - started >= self.timeout * 0.9
            raise failures.handshake_failed(spec, self.timeout, exc, timed_out=timed_out) from None

    def _authenticate(self, transport: paramiko.Transport, keys: identities.Identities) -> None:
        """Offer each key in OpenSSH's order, the whole exchange bounded by --timeout."""
        try:
            identities.authenticate_within(transport, self.user, keys, str(self.spec), self.timeout)
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
            raise failures.tunnel_failed(target, self.spec, exc) from None

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
        """An absolute path as the server resolves it: `~/x` from the login directory, the
        directory's links and `..` resolved there; a missing directory left as written."""
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
        """The names in `directory` that `keep` wants, bounded (listing.py); READDIRs sent
        several at a time (`listing.IN_FLIGHT`), the CLOSE not waited for."""
        handle = self._open_handle(wire.CMD_OPENDIR, directory)
        try:
            readdirs = lambda n: self._in_flight([(wire.CMD_READDIR, handle)] * n)  # noqa: E731
            where = str(self.spec)
            return listing.names(readdirs, directory, keep, seconds=self.timeout, where=where)
        finally:
            self._close_later(handle)

    def read_file(self, path: str, expected: int, limit: int) -> tuple[Attrs, bytes]:
        """Open `path`; FSTAT, READs of its `expected` bytes and one past them (EOF, or read
        on, at most `limit` + 1 bytes), sent together: one round trip after the open, the
        CLOSE not waited for. The caller compares the FSTAT attributes with its lstat."""
        handle = self._open_handle(wire.CMD_OPEN, path, wire.SFTP_FLAG_READ, Attrs())
        try:
            fstat: list[Ask] = [(wire.CMD_FSTAT, handle)]
            data, size = bytearray(), min(expected, limit)
            while True:
                start = len(data)
                ats = range(start, start + size, READ_CHUNK)
                spans = [(at, min(READ_CHUNK, start + size - at)) for at in ats]
                spans.append((start + size, READ_CHUNK))  # past the end: EOF, or more
                reads: list[Ask] = [(wire.CMD_READ, handle, wire.int64(a), n) for a, n in spans]
                replies = failures.all_ok(self._pipelined(fstat + reads))
                if fstat:
                    kind, msg = replies.pop(0)
                    if kind != wire.CMD_ATTRS or msg is None:
                        raise paramiko.SFTPError("expected attributes")
                    attrs, fstat = Attrs._from_msg(msg), []  # type: ignore[attr-defined]
                for (at, _n), (kind, msg) in zip(spans, replies, strict=True):
                    if at != len(data):
                        break  # a short answer before this one: read on from there
                    chunk = msg.get_binary() if kind == wire.CMD_DATA and msg is not None else b""
                    if not chunk:
                        return attrs, bytes(data)  # EOF at the end of what was read
                    data += chunk
                if len(data) > limit:
                    return attrs, bytes(data)  # the caller refuses it
                size = min(READ_CHUNK * 8, limit + 1 - len(data))
        finally:
            self._close_later(handle)

    def _open_handle(self, kind: int, *args: object) -> bytes:
        reply, msg = self._client._request(kind, *args)  # type: ignore[attr-defined]
        if reply != wire.CMD_HANDLE or msg is None:
            raise paramiko.SFTPError("expected a handle")
        return bytes(msg.get_binary())

    def _pipelined(self, requests: list[Ask]) -> list[Reply | OSError]:
        """Send all, then read all (one round trip); a failed status comes back as OSError."""
        return list(self._in_flight(requests))

    def _in_flight(self, requests: list[Ask]) -> Iterator[Reply | OSError]:
        """Send all, then each answer as it is read (the unread ones are dropped on arrival)."""
        client = self._client
        sent = [client._async_request(type(None), *r) for r in requests]  # type: ignore[attr-defined]
        for num in sent:
            try:
                yield client._read_response(num)  # type: ignore[attr-defined]
            except EOFError:
                yield (None, None)
            except (TimeoutError, paramiko.SSHException):
                raise  # the connection stalled or is gone: waiting for the rest would too
            except OSError as exc:  # a status for this request: the others still answer
                yield exc

    def attributes(self, *asks: tuple[str, str]) -> list[Attrs | OSError]:
        """("stat" or "lstat", path) each, sent together (one round trip): the attributes,
        or the error each got (FileNotFoundError, PermissionError…)."""
        kinds = {"stat": wire.CMD_STAT, "lstat": wire.CMD_LSTAT}
        replies = self._pipelined([(kinds[kind], path) for kind, path in asks])
        return [r if isinstance(r, OSError) else Attrs._from_msg(r[1]) for r in replies]  # type: ignore[attr-defined]

    def _close_later(self, handle: bytes) -> None:
        """CLOSE a read-only handle without waiting (its answer is dropped with the next)."""
        with contextlib.suppress(*IO_ERRORS):
            self._client._async_request(type(None), wire.CMD_CLOSE, handle)  # type: ignore[attr-defined]

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
            self._client._request(wire.CMD_EXTENDED, "hardlink@openssh.com", existing, new)  # type: ignore[attr-defined]
        except IO_ERRORS:
            return False
        return True

    def free_bytes(self, directory: str) -> int:
        """Space left for us under `directory` (statvfs@openssh.com); huge if unknown."""
        try:
            kind, msg = self._client._request(  # type: ignore[attr-defined]
                wire.CMD_EXTENDED, "statvfs@openssh.com", directory
            )
        except IO_ERRORS:
            return 1 << 62
        if kind != wire.CMD_EXTENDED_REPLY or msg is None:
            return 1 << 62
        _bsize, frsize, _blocks, _bfree, bavail = (msg.get_int64() for _ in range(5))
        return int(frsize * bavail)

    # --- file contents -----------------------------------------------------------------

    def open_file(self, path: str, flags: int, mode: int | None = None) -> paramiko.SFTPFile:
        """An SFTP handle on `path` opened with `flags`, `mode` in the OPEN request itself."""
        attrs = paramiko.SFTPAttributes()
        if mode is not None:
            attrs.st_mode = mode
        handle = self._open_handle(wire.CMD_OPEN, path, flags, attrs)
        text = "wb" if flags & wire.SFTP_FLAG_WRITE else "rb"  # an append: the caller seeks
        return paramiko.SFTPFile(self._client, handle, text)

    def close_later(self, fh: paramiko.SFTPFile) -> None:
        """Close a handle whose writes were checked (FSTAT) without waiting for the answer."""
        fh.flush()
        fh._closed = True  # type: ignore[attr-defined]
        self._close_later(fh.handle)  # type: ignore[arg-type]

    def check_written(self, handle: paramiko.SFTPFile) -> None:
        """Raise the failure Paramiko kept from a pipelined write (ENOSPC…) without raising."""
        saved = getattr(handle, "_saved_exception", None)
        if isinstance(saved, BaseException):
            raise saved

    # --- commands ----------------------------------------------------------------------

    def run(self, command: str, timeout: float) -> paramiko.Channel:
        """A session channel running `command` (stdout and stderr combined, no stdin);
        opening it and the exec request are bounded by `timeout`."""
        try:
            return steps.start_command(self._live_transport, timeout, str(self.spec), command)
        except IO_ERRORS as exc:
            raise lost(self.spec, "starting the post-command", exc) from None

    def can_run_commands(self) -> bool:
        """Whether this account may run commands (not SFTP-only); see `steps`."""
        return steps.can_run_commands(self._live_transport, self.timeout, str(self.spec))
