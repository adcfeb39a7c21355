"""A hostile SSH/SFTP server for tests, written on Paramiko's server side
(`paramiko.ServerInterface` + `paramiko.SFTPServerInterface`) over a real directory.

It authenticates the test client key with a real host key and then serves files from
`root` honestly, except where its `tricks` tell it to lie:

- `error-text`: every failure status carries `HOSTILE_TEXT` (newlines and workflow
  commands) as its message, and opening a file for writing fails;
- `endless-read`: the target file claims a small size but reads never reach EOF;
- `huge-size`: the target file claims to be 3 GiB;
- `char-device`: the target file is reported as a character device (a /dev/zero);
- `endless-list`: listing any directory never ends: every READDIR answer brings 16 new
  names (200 characters each), never EOF (`sent` counts them); `slow-list`: the same with
  short names, one answer every 20 ms (neither the entry nor the byte bound is reached
  before --timeout); `endless-list-later`: the first listing is honest (the debris
  clean-up), every later one endless (the backup listing);
- `symlinks`: every name that does not exist yet is reported by lstat as a symlink
  (where the tool's lock, temp, backup and audit files should be created).

- `stall-auth`, `stall-channel`, `stall-sftp`: never answer the authentication, the
  session channel request, or the SFTP version exchange (until the server is closed).

No exec channel is offered: like an SFTP-only account, it cannot run commands.
A stand-in only in the sense that a hostile server has to be written: the client is the
real code, the transport is real SSH.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import socket
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko
from paramiko.sftp import SFTP_FAILURE, SFTP_NO_SUCH_FILE, SFTP_OK, SFTP_PERMISSION_DENIED

HOSTILE_TEXT = "\n::error title=owned::by the server\n::stop-commands::x\n::warning::after\x1b[2J"
TARGET = ".env"
HUGE = 3 << 30


def _errno_status(exc: OSError) -> int:
    return paramiko.SFTPServer.convert_errno(exc.errno or 0)  # type: ignore[no-any-return]


class _Endless(list[Any]):
    """A folder listing for paramiko's server: each slice of 16 is 16 fresh names."""

    def __init__(self, server: HostileServer) -> None:
        super().__init__([None])
        self.server = server

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice) and index.start:  # the rest after a batch: still endless
            return self
        slow = "slow-list" in self.server.tricks
        if slow:
            time.sleep(0.02)
        batch = []
        for _ in range(16):
            self.server.sent += 1
            name = f"j{self.server.sent}" if slow else f"junk-{self.server.sent:012d}-" + "x" * 183
            attr = paramiko.SFTPAttributes()
            attr.filename, attr.st_mode, attr.st_size = name, 0o100644, 0
            batch.append(attr)
        return batch


class _Handle(paramiko.SFTPHandle):
    def __init__(self, path: Path, flags: int, fd: int, server: HostileServer) -> None:
        super().__init__(flags)
        self.path = path
        self.server = server
        self.fd = fd

    def read(self, offset: int, length: int) -> bytes | int:
        if self.server.is_target(self.path) and "endless-read" in self.server.tricks:
            return b"E" * min(length, 32768)
        try:
            return os.pread(self.fd, length, offset)
        except OSError as exc:
            return _errno_status(exc)

    def write(self, offset: int, data: bytes) -> int:
        try:
            os.pwrite(self.fd, data, offset)
        except OSError as exc:
            return _errno_status(exc)
        return SFTP_OK

    def stat(self) -> paramiko.SFTPAttributes | int:
        return self.server.attributes(self.path, follow=True)

    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        if attr.st_mode is not None:
            os.fchmod(self.fd, stat.S_IMODE(attr.st_mode))
        return SFTP_OK

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class HostileSFTP(paramiko.SFTPServerInterface):
    def __init__(self, server: paramiko.ServerInterface, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        assert isinstance(server, _Auth)
        self.hostile = server.hostile

    def _local(self, path: str) -> Path:
        return self.hostile.root / path.lstrip("/")

    def open(
        self, path: str, flags: int, attr: paramiko.SFTPAttributes
    ) -> paramiko.SFTPHandle | int:
        local = self._local(path)
        if "error-text" in self.hostile.tricks and flags & (os.O_WRONLY | os.O_RDWR):
            return SFTP_FAILURE
        mode = stat.S_IMODE(attr.st_mode) if attr.st_mode is not None else 0o644
        try:
            fd = os.open(local, flags | os.O_NOFOLLOW, mode)
        except OSError as exc:
            return _errno_status(exc)
        return _Handle(local, flags, fd, self.hostile)

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        return self.hostile.attributes(self._local(path), follow=True)

    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        return self.hostile.attributes(self._local(path), follow=False)

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        self.hostile.listings += 1
        later = "endless-list-later" in self.hostile.tricks and self.hostile.listings > 1
        if later or {"endless-list", "slow-list"} & self.hostile.tricks:
            return _Endless(self.hostile)
        local = self._local(path)
        try:
            names = os.listdir(local)
        except OSError as exc:
            return _errno_status(exc)
        out = []
        for name in names:
            attr = paramiko.SFTPAttributes.from_stat(os.lstat(local / name), name)
            out.append(attr)
        return out

    def remove(self, path: str) -> int:
        try:
            os.remove(self._local(path))
        except OSError as exc:
            return _errno_status(exc)
        return SFTP_OK

    def rename(self, oldpath: str, newpath: str) -> int:
        return self.posix_rename(oldpath, newpath)

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        try:
            os.rename(self._local(oldpath), self._local(newpath))
        except OSError as exc:
            return _errno_status(exc)
        return SFTP_OK

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        local = self._local(path)
        if local.is_symlink():
            return SFTP_PERMISSION_DENIED
        try:
            if attr.st_mode is not None:
                os.chmod(local, stat.S_IMODE(attr.st_mode))
        except OSError as exc:
            return _errno_status(exc)
        return SFTP_OK

    def canonicalize(self, path: str) -> str:
        return "/" + posixpath.normpath("/" + path).lstrip("/")


class HostileSFTPServer(paramiko.SFTPServer):
    """SFTPServer whose failure messages carry workflow commands when asked to."""

    hostile: HostileServer

    def start_subsystem(self, name: str, transport: paramiko.Transport, channel: Any) -> None:
        if "stall-sftp" in self.hostile.tricks:
            self.hostile.released.wait(600)
            return
        super().start_subsystem(name, transport, channel)

    def _send_status(self, request_number: int, code: int, desc: str | None = None) -> None:
        if code != SFTP_OK and "error-text" in self.hostile.tricks:
            desc = HOSTILE_TEXT
        super()._send_status(request_number, code, desc)  # type: ignore[misc]


class _Auth(paramiko.ServerInterface):
    def __init__(self, hostile: HostileServer) -> None:
        self.hostile = hostile

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if "stall-auth" in self.hostile.tricks:
            self.hostile.released.wait(600)
        if key.asbytes() == self.hostile.client_key.asbytes():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if "stall-channel" in self.hostile.tricks:
            self.hostile.released.wait(600)
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        return False  # an SFTP-only server


class HostileServer:
    """Listen on 127.0.0.1; serve `root` over SFTP with `tricks` (see the module doc)."""

    def __init__(
        self, root: Path, host_key: Path, client_key: paramiko.PKey, tricks: set[str]
    ) -> None:
        self.root = root
        self.host_key = paramiko.Ed25519Key.from_private_key_file(str(host_key))
        self.client_key = client_key
        self.tricks = tricks
        self.sent = 0  # names sent by `endless-list`
        self.listings = 0  # directories opened for listing
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._transports: list[paramiko.Transport] = []
        self._sftp_server = type("BoundHostileSFTPServer", (HostileSFTPServer,), {"hostile": self})
        self._stop = threading.Event()
        self.released = threading.Event()  # set on close: every stall ends
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def is_target(self, path: Path) -> bool:
        return path.name == TARGET

    def attributes(self, local: Path, *, follow: bool) -> paramiko.SFTPAttributes | int:
        try:
            st = os.stat(local) if follow else os.lstat(local)
        except FileNotFoundError:
            if "symlinks" in self.tricks and not follow and local.parent.is_dir():
                attr = paramiko.SFTPAttributes()
                attr.st_mode = stat.S_IFLNK | 0o777
                attr.st_size = 11
                return attr
            return SFTP_NO_SUCH_FILE
        except OSError as exc:
            return _errno_status(exc)
        attr = paramiko.SFTPAttributes.from_stat(st, local.name)
        if self.is_target(local) and attr.st_mode is not None:
            if "huge-size" in self.tricks:
                attr.st_size = HUGE
            if "char-device" in self.tricks:
                attr.st_mode = stat.S_IFCHR | 0o666
                attr.st_size = 0
        return attr

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            # as OpenSSH's sshd does: answers to pipelined requests are not held back
            # behind the client's delayed ACK (Nagle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport = paramiko.Transport(sock)
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", self._sftp_server, HostileSFTP)
            self._transports.append(transport)
            with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                transport.start_server(server=_Auth(self))

    @property
    def known_hosts_line(self) -> str:
        key = self.host_key
        return f"[127.0.0.1]:{self.port} {key.get_name()} {key.get_base64()}"

    def close(self) -> None:
        self._stop.set()
        self.released.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(timeout=5)
        for t in self._transports:
            t.close()


Hostile = Callable[..., tuple[HostileServer, list[str]]]
