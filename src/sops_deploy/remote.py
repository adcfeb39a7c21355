"""One server over SSH/SFTP: connect with a verified host key, read, and replace a file atomically.

This module owns the socket: host-key trust, authentication, the SFTP session, and the
byte-level write protocol (temp file created 0600 → write → chmod → posix-rename). It
does not decide what to write; `deploy.py` does.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import posixpath
import secrets
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from paramiko.sftp import (
    CMD_EXTENDED,
    CMD_EXTENDED_REPLY,
    CMD_HANDLE,
    CMD_OPEN,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_EXCL,
    SFTP_FLAG_WRITE,
)

from sops_deploy import knownhosts
from sops_deploy.config import HostSpec
from sops_deploy.errors import ConnectError, HostKeyError, RemoteError, UsageError

TEMP_MARKER = ".sops-deploy."
_KEY_CLASSES: tuple[type[paramiko.PKey], ...] = (
    paramiko.Ed25519Key,
    paramiko.ECDSAKey,
    paramiko.RSAKey,
)

SSH_KEY_HINT = (
    "SSH_PRIVATE_KEY must hold a whole private key, from its -----BEGIN … PRIVATE KEY----- "
    "line to its -----END … PRIVATE KEY----- line (ed25519, ecdsa or rsa)"
)


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a public key (`ssh-keygen -lf` style)."""
    return knownhosts.fingerprint(key.asbytes())


@dataclass(frozen=True)
class Trust:
    """How host keys are trusted: known_hosts (lines or a path), pinned fingerprints, or not."""

    known_hosts: str | None = None
    fingerprints: tuple[str, ...] = ()
    insecure: bool = False
    _warned: list[bool] = field(default_factory=list, compare=False, repr=False)

    @functools.cached_property
    def known(self) -> knownhosts.KnownHosts:
        """known_hosts as OpenSSH reads it (`knownhosts`); ~/.ssh/known_hosts by default."""
        source = self.known_hosts
        if source is None:
            default = Path.home() / ".ssh" / "known_hosts"
            source = str(default) if default.is_file() else None
        if source is None:
            return knownhosts.parse("")
        name = "--known-hosts"
        if "\n" not in source.strip() and Path(source).exists():
            name, source = source, Path(source).read_text(encoding="utf-8", errors="replace")
        elif "\n" not in source.strip() and " " not in source.strip():
            raise UsageError(
                f"--known-hosts {source}: no such file",
                "pass known_hosts lines themselves or the path of a known_hosts file",
            )
        return knownhosts.parse(source, name)

    def warn_once(self, warn: Callable[[str], None]) -> None:
        """Report known_hosts lines that are skipped, once per run."""
        if not self._warned:
            self._warned.append(True)
            for message in self.known.warnings():
                warn(message)


@dataclass(frozen=True)
class Credentials:
    """The SSH private key (text or file) and its passphrase; never printed."""

    key_text: str | None = field(default=None, repr=False)
    key_file: str | None = None
    passphrase: str | None = field(default=None, repr=False)

    def load(self) -> paramiko.PKey:
        if self.key_text is not None:
            text, source = self.key_text, "SSH_PRIVATE_KEY"
        elif self.key_file is not None:
            try:
                text = Path(self.key_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise UsageError(
                    f"--ssh-key-file {self.key_file}: {exc.strerror}",
                    "pass the path of a readable private key file",
                ) from None
            source = self.key_file
        else:
            raise UsageError(
                "no SSH private key given",
                "set the SSH_PRIVATE_KEY secret (or pass --ssh-key-file)",
            )
        return load_private_key(text, source, self.passphrase)


def load_private_key(text: str, source: str, passphrase: str | None) -> paramiko.PKey:
    """Parse an OpenSSH/PEM private key, with errors that say what is wrong with it."""
    stripped = text.strip().replace("\r\n", "\n")
    if stripped.startswith(("ssh-ed25519 ", "ssh-rsa ", "ecdsa-sha2-")):
        raise UsageError(
            f"{source} holds a public key, not a private key",
            "paste the private key file (e.g. ~/.ssh/id_ed25519, not the .pub)",
        )
    if "-----BEGIN" not in stripped or "PRIVATE KEY-----" not in stripped:
        raise UsageError(f"{source} has no -----BEGIN … PRIVATE KEY----- line", SSH_KEY_HINT)
    if "-----END" not in stripped:
        raise UsageError(
            f"{source} has no -----END … PRIVATE KEY----- line (truncated?)", SSH_KEY_HINT
        )
    needs_passphrase = False
    for cls in _KEY_CLASSES:
        try:
            return cls.from_private_key(io.StringIO(stripped + "\n"), password=passphrase)
        except paramiko.PasswordRequiredException:
            needs_passphrase = True
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    if needs_passphrase and not passphrase:
        raise UsageError(
            f"{source} is encrypted with a passphrase", "set the SSH_PRIVATE_KEY_PASSPHRASE secret"
        )
    if passphrase:
        raise UsageError(
            f"{source} could not be decrypted: wrong passphrase or damaged key",
            "check SSH_PRIVATE_KEY_PASSPHRASE and that the key is complete",
        )
    raise UsageError(f"{source} is not a readable ed25519, ecdsa or rsa private key", SSH_KEY_HINT)


def verify_host_key(
    spec: HostSpec,
    key: paramiko.PKey,
    trust: Trust,
    warn: Callable[[str], None],
    offered: tuple[str, ...] = (),
) -> None:
    """Accept the server's key only if pinned or in known_hosts (OpenSSH's rules, see
    `knownhosts`); otherwise raise with what to pin. `offered`: other keys the server
    showed when we asked for other key types (pinned fingerprints only)."""
    seen = fingerprint(key)
    trust.warn_once(warn)
    verdict = knownhosts.check(trust.known, spec.host, spec.port, key.asbytes())
    if verdict.decision is knownhosts.Decision.REVOKED:
        where = ", ".join(f"{trust.known.source} line {e.line}" for e in verdict.lines)
        raise HostKeyError(
            f"{spec}: the server's host key {key.get_name()} {seen} is revoked (@revoked in "
            f"{where}); refusing to connect",
            "the server still uses a key you revoked: give it a new host key, then pin the "
            "new one with host-key-fingerprint or a known-hosts line (see "
            "README#faq-unknown-host-key)",
        )
    if trust.fingerprints:
        if seen in trust.fingerprints:
            return
        also = f"; it also offered {', '.join(offered)}" if offered else ""
        raise HostKeyError(
            f"{spec}: host key fingerprint mismatch: the server presented {seen} "
            f"({key.get_name()}){also}, expected {', '.join(trust.fingerprints)}",
            "if the server was rebuilt, verify the new key out of band and update "
            "host-key-fingerprint; otherwise someone may be intercepting the connection "
            "(see README#faq-unknown-host-key)",
        )
    if verdict.decision is knownhosts.Decision.ACCEPT:
        return
    if verdict.decision is knownhosts.Decision.CHANGED:
        listed = ", ".join(f"{e.key_type} {e.fingerprint} (line {e.line})" for e in verdict.lines)
        raise HostKeyError(
            f"{spec}: HOST KEY CHANGED: the server presented {key.get_name()} {seen}, "
            f"but {trust.known.source} has {listed}",
            "if you rebuilt the server, verify the new key and replace its known_hosts line "
            "(known-hosts) or pin it with host-key-fingerprint; otherwise someone may be "
            "intercepting the connection (see README#faq-unknown-host-key)",
        )
    if trust.insecure:
        warn(
            f"{spec}: accepting host key {seen} WITHOUT verification "
            "(--insecure-accept-any-host-key); anyone on the path can read your secrets"
        )
        return
    raise HostKeyError(
        f"{spec}: unknown host key {key.get_name()} {seen}; refusing to connect",
        f"verify it on the server (`ssh-keygen -lf /etc/ssh/ssh_host_{_short(key)}_key.pub`), "
        f"then pin it with --host-key-fingerprint {seen} or add `ssh-keyscan -p {spec.port} "
        f"{spec.host}` output to known-hosts (see README#faq-unknown-host-key)",
    )


def _short(key: paramiko.PKey) -> str:
    name = key.get_name()
    return "ed25519" if "ed25519" in name else "ecdsa" if "ecdsa" in name else "rsa"


@dataclass
class FileState:
    """What is at the target path now."""

    content: bytes | None
    mode: int | None
    is_symlink: bool = False
    uid: int | None = None
    gid: int | None = None


class Connection:
    """One SSH transport and one SFTP session to one host, for a whole deploy."""

    def __init__(
        self,
        spec: HostSpec,
        creds: Credentials,
        trust: Trust,
        *,
        default_user: str,
        timeout: float,
        warn: Callable[[str], None] = lambda _m: None,
        sock: socket.socket | paramiko.Channel | None = None,
        open_sftp: bool = True,
    ) -> None:
        self.spec = spec
        self.user = spec.user or default_user
        self._creds = creds
        self._trust = trust
        self._timeout = timeout
        self._warn = warn
        self._sock = sock
        self._open_sftp = open_sftp
        self.transport: paramiko.Transport | None = None
        self._offerable: tuple[str, ...] = ()
        self._sftp: paramiko.SFTPClient | None = None

    def __enter__(self) -> Connection:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            raise RuntimeError("connection is not open")
        return self._sftp

    def open(self) -> None:
        spec = self.spec
        pkey = self._creds.load()
        shown = [self._handshake(())]
        while self._other_key_type_may_be_pinned(shown):
            self.close()
            try:
                shown.append(self._handshake(tuple(k.get_name() for k in shown)))
            except ConnectError:  # no other host key type that the server and we share
                break
        pins = self._trust.fingerprints
        server_key = next((k for k in shown if fingerprint(k) in pins), shown[0])
        others = tuple(f"{k.get_name()} {fingerprint(k)}" for k in shown if k is not server_key)
        verify_host_key(spec, server_key, self._trust, self._warn, others)
        transport = self.transport
        if transport is None:  # the key was pinned, so this is the open transport
            raise RuntimeError("connection is not open")
        try:
            transport.auth_publickey(self.user, pkey)
        except paramiko.AuthenticationException:
            self.close()
            raise RemoteError(
                f"{spec}: authentication failed for user {self.user} with the "
                f"{pkey.get_name()} key {fingerprint(pkey)}",
                f"add the matching public key to ~{self.user}/.ssh/authorized_keys on the "
                "server, or check the user name (--user / user@host) "
                "(see README#faq-cannot-connect)",
            ) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.close()
            raise RemoteError(
                f"{spec}: SSH authentication error: {exc}", "check the server's sshd logs"
            ) from None
        if not self._open_sftp:
            return
        try:
            self._sftp = paramiko.SFTPClient.from_transport(transport)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.close()
            raise RemoteError(
                f"{spec}: the server refused the SFTP subsystem: {exc}",
                "enable `Subsystem sftp` (internal-sftp) in sshd_config",
            ) from None
        if self._sftp is not None:
            self._sftp.get_channel().settimeout(self._timeout)  # type: ignore[union-attr]

    def _handshake(self, refused: tuple[str, ...]) -> paramiko.PKey:
        """Connect and run the key exchange, offering host key types in the order
        `knownhosts.key_type_preference` gives (known types first, `refused` left out)."""
        spec = self.spec
        known = knownhosts.known_key_types(self._trust.known, spec.host, spec.port)
        sock = self._sock
        if sock is None:
            try:
                sock = socket.create_connection((spec.host, spec.port), timeout=self._timeout)
            except TimeoutError:
                raise ConnectError(
                    f"{spec}: connection to {spec.host} port {spec.port} timed out after "
                    f"{self._timeout:g}s",
                    "check the host and port, and that a firewall lets SSH "
                    "through; raise --timeout for slow links",
                ) from None
            except OSError as exc:
                raise ConnectError(
                    f"{spec}: cannot connect to {spec.host} port {spec.port}: "
                    f"{exc.strerror or exc}",
                    "check the host name and port, and that sshd is running "
                    "(see README#faq-cannot-connect)",
                ) from None
        transport = paramiko.Transport(sock)
        self.transport = transport
        transport.set_keepalive(15)
        transport.banner_timeout = self._timeout
        options = transport.get_security_options()
        self._offerable = tuple(options.key_types)
        options.key_types = knownhosts.key_type_preference(options.key_types, known, refused)
        started = time.monotonic()
        try:
            transport.start_client(timeout=self._timeout)
            server_key = transport.get_remote_server_key()  # raises if start_client timed out
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.close()
            if time.monotonic() - started >= self._timeout * 0.9:
                raise ConnectError(
                    f"{spec}: timed out: no SSH answer from {spec.host} port {spec.port} "
                    f"within {self._timeout:g}s",
                    "check that this port is an SSH server and that nothing on the path "
                    "stalls the connection; raise --timeout for slow links",
                ) from None
            raise ConnectError(
                f"{spec}: SSH handshake failed: {str(exc) or type(exc).__name__} "
                f"({spec.host} port {spec.port} closed the connection)",
                "check that the port is an SSH server and that it is reachable",
            ) from None
        return server_key

    def _other_key_type_may_be_pinned(self, shown: list[paramiko.PKey]) -> bool:
        """A fingerprint does not say its key type: when the key shown is not pinned, ask
        again for the types not seen yet (direct connections; a tunnel is used once)."""
        pins = self._trust.fingerprints
        if not pins or self._sock is not None or fingerprint(shown[-1]) in pins:
            return False
        refused = tuple(k.get_name() for k in shown)
        return bool(knownhosts.key_type_preference(self._offerable, (), refused))

    def close(self) -> None:
        if self._sftp is not None:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                self._sftp.close()  # raises when the connection is already gone
            self._sftp = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    # --- file operations -------------------------------------------------------------

    def resolve(self, path: str) -> str:
        """An absolute remote path; `~/x` is taken relative to the login directory."""
        if path.startswith("~/"):
            home = self.sftp.normalize(".")
            return posixpath.join(home, path[2:])
        return path

    def state(self, path: str, *, read: bool = True) -> FileState:
        """The current content and mode at `path` (content None when absent, or not read)."""
        directory = posixpath.dirname(path) or "/"
        try:
            dir_attr = self.sftp.stat(directory)
        except FileNotFoundError:
            raise RemoteError(
                f"{self.spec}: directory {directory} does not exist",
                f"create it on the server (`mkdir -p {directory}`) or fix --remote-path "
                "(see README#faq-remote-dir)",
            ) from None
        except PermissionError:
            raise RemoteError(
                f"{self.spec}: permission denied on {directory}",
                f"let {self.user} read and write {directory}",
            ) from None
        if dir_attr.st_mode is not None and not stat.S_ISDIR(dir_attr.st_mode):
            raise RemoteError(f"{self.spec}: {directory} is not a directory", "fix --remote-path")
        try:
            attr = self.sftp.lstat(path)
        except FileNotFoundError:
            return FileState(None, None)
        mode = attr.st_mode or 0
        if stat.S_ISLNK(mode):
            return FileState(None, None, is_symlink=True)
        if stat.S_ISDIR(mode):
            raise RemoteError(
                f"{self.spec}: {path} is a directory",
                "point --remote-path at the file itself, e.g. /srv/app/.env",
            )
        if not read:
            return FileState(None, stat.S_IMODE(mode), uid=attr.st_uid, gid=attr.st_gid)
        try:
            with self.sftp.open(path, "rb") as fh:
                fh.prefetch(attr.st_size)
                content = fh.read()
        except PermissionError:
            raise RemoteError(
                f"{self.spec}: permission denied reading {path}",
                f"make {path} readable by {self.user}",
            ) from None
        return FileState(content, stat.S_IMODE(mode), uid=attr.st_uid, gid=attr.st_gid)

    def write_atomic(
        self, path: str, data: bytes, mode: int, owner: tuple[int, int] | None = None
    ) -> None:
        """Replace `path` with `data` so that readers see the old file or the new one, whole.

        The temp file is created exclusively with mode 0600 in the target's directory (so
        it is never readable by others, not even for a moment), filled, given its final
        mode and (when `owner` is given and differs) the old file's uid/gid, then renamed
        over the target with posix-rename. Any failure removes it.
        """
        directory, name = posixpath.split(path)
        temp = posixpath.join(directory, f".{name}{TEMP_MARKER}{secrets.token_hex(6)}.tmp")
        try:
            self._write_checked(temp, data)
            if mode != 0o600:
                self.sftp.chmod(temp, mode)
            if owner is not None:
                self._chown_like(temp, path, owner)
            self.sftp.posix_rename(temp, path)
        except BaseException as exc:
            self._remove_quietly(temp)
            if isinstance(exc, PermissionError):
                raise RemoteError(
                    f"{self.spec}: permission denied writing in {directory}",
                    f"let {self.user} create files in {directory}",
                ) from None
            if isinstance(exc, OSError) and (
                "No space" in str(exc) or self._free_bytes(directory) < len(data)
            ):
                raise RemoteError(
                    f"{self.spec}: the disk holding {directory} is full",
                    "free space on the server; the old file is untouched",
                ) from None
            if isinstance(exc, TimeoutError):
                raise RemoteError(
                    f"{self.spec}: timed out after {self._timeout:g}s while writing {path}; "
                    "the old file is untouched",
                    "the server or the network stalled; check them, or raise --timeout",
                ) from None
            if isinstance(exc, (OSError, EOFError, paramiko.SSHException)):
                why = "the connection was lost" if isinstance(exc, EOFError) else str(exc)
                raise RemoteError(
                    f"{self.spec}: write of {path} failed: {why or type(exc).__name__}; "
                    "the old file is untouched",
                    "check the connection and the server's disk",
                ) from None
            raise

    def _free_bytes(self, directory: str) -> int:
        """Space left for us under `directory` (statvfs@openssh.com); huge if unknown.

        OpenSSH's sftp-server reports ENOSPC as a bare "Failure" (SFTP v3 has no code for
        it), so a failed write asks the file system how much room is left."""
        try:
            kind, msg = self.sftp._request(  # type: ignore[attr-defined]
                CMD_EXTENDED, "statvfs@openssh.com", directory
            )
        except (OSError, EOFError, paramiko.SSHException):
            return 1 << 62
        if kind != CMD_EXTENDED_REPLY or msg is None:
            return 1 << 62
        _bsize, frsize, _blocks, _bfree, bavail = (msg.get_int64() for _ in range(5))
        return int(frsize * bavail)

    def _chown_like(self, temp: str, path: str, owner: tuple[int, int]) -> None:
        attr = self.sftp.stat(temp)
        if (attr.st_uid, attr.st_gid) == owner:
            return
        try:
            self.sftp.chown(temp, *owner)
        except PermissionError:
            self._warn(
                f"{self.spec}: {path} was owned by {owner[0]}:{owner[1]}; {self.user} may not "
                "give the new file that owner, so it now belongs to "
                f"{attr.st_uid}:{attr.st_gid}"
            )

    def write_private(self, path: str, data: bytes) -> None:
        """Create `path` exclusively, mode 0600 from the first instant, holding `data`."""
        self._write_checked(path, data)

    def _write_checked(self, path: str, data: bytes) -> None:
        # Pipelined writes are answered asynchronously, and paramiko keeps a failed answer
        # (ENOSPC, EDQUOT…) in `_saved_exception` without raising it on close: a full disk
        # would silently leave a short file. Check both the saved error and the size.
        handle = self._create_private(path)
        with handle:
            handle.set_pipelined(True)
            handle.write(data)
        saved = getattr(handle, "_saved_exception", None)
        if isinstance(saved, BaseException):
            raise saved
        size = self.sftp.stat(path).st_size
        if size != len(data):
            raise OSError(f"short write: {size} of {len(data)} bytes reached the server")

    def _create_private(self, path: str) -> paramiko.SFTPFile:
        # paramiko's SFTPClient.open sends no attributes, so the server would create the
        # file with its default mode (often 0644) until a later chmod. Sending st_mode in
        # the OPEN request makes sftp-server create it 0600 from the first instant.
        attrs = paramiko.SFTPAttributes()
        attrs.st_mode = 0o600
        flags = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL
        kind, msg = self.sftp._request(CMD_OPEN, path, flags, attrs)  # type: ignore[attr-defined]
        if kind != CMD_HANDLE or msg is None:
            raise paramiko.SFTPError("expected a file handle")
        return paramiko.SFTPFile(self.sftp, msg.get_binary(), "wb")

    def _remove_quietly(self, path: str) -> None:
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException, RuntimeError):
            self.sftp.remove(path)

    def chmod(self, path: str, mode: int) -> None:
        self.sftp.chmod(path, mode)


def local_user() -> str:
    return os.environ.get("USER") or os.environ.get("LOGNAME") or "root"
