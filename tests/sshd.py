"""A real OpenSSH sshd on 127.0.0.1 for tests: throwaway keys, internal-sftp, random port.

Used by the pytest fixtures and by `make demo`. Nothing here is mocked: it is the
Debian `openssh-server` binary, started and stopped by the caller.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests import processes

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path, kind: str = "ed25519", passphrase: str = "") -> str:
    """Generate an SSH key pair at `path`; returns the public key line."""
    args = ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-f", str(path), "-C", "test"]
    if kind == "rsa":
        args[4:4] = ["-b", "2048"]
    subprocess.run(args, check=True, stdin=subprocess.DEVNULL)
    return path.with_suffix(path.suffix + ".pub").read_text().strip()


def fingerprint_of(pub_path: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(pub_path)], capture_output=True, text=True, check=True
    ).stdout
    return out.split()[1]


@dataclass
class Sshd:
    """One running sshd. `known_hosts_line` pins it; `client_key` logs in as `user`."""

    root: Path
    port: int
    user: str
    client_key: Path
    host_key: Path
    extra_config: str = ""
    sftp_args: str = ""  # e.g. "-d /srv/host1": where `~/` points for SFTP clients
    subsystem: str = "internal-sftp"  # or an external server, e.g. /usr/lib/openssh/sftp-server
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    @property
    def known_hosts_line(self) -> str:
        pub = self.host_key.with_suffix(".pub").read_text().split()
        return f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}"

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.host_key.with_suffix(".pub"))

    def start(self) -> None:
        Path("/run/sshd").mkdir(exist_ok=True)
        auth = self.root / "authorized_keys"
        auth.write_text(self.client_key.with_suffix(".pub").read_text())
        auth.chmod(0o600)
        config = self.root / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"PidFile {self.root}/sshd.pid\nAuthorizedKeysFile {auth}\nStrictModes no\n"
            "UsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
            f"Subsystem sftp {self.subsystem} {self.sftp_args}\n"
            "LogLevel ERROR\nMaxStartups 100:30:200\n"
            "MaxSessions 100\nAllowTcpForwarding yes\n"
            f"SetEnv {processes.MARKER}={self.root}\n" + self.extra_config
        )
        with open(self.root / "sshd.log", "ab") as log:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        processes.register_tree(self.proc.pid)
        processes.MARKS.add(str(self.root))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as s,
            ):
                if s.recv(4).startswith(b"SSH-"):
                    return
            time.sleep(0.05)
        raise RuntimeError("sshd did not start within 10s")

    def stop(self) -> None:
        """Stop the listener, every per-connection child it forked (they call setsid and
        outlive the listener otherwise) and every process of its sessions (a subsystem
        or login shell that outlived its connection), found by the sshd's mark."""
        if self.proc is None:
            return
        processes.kill_tree(self.proc.pid)
        processes.kill_marked(str(self.root))
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def make_sshd(
    root: Path,
    *,
    port: int | None = None,
    client_key: Path | None = None,
    extra_config: str = "",
    sftp_args: str = "",
    subsystem: str = "internal-sftp",
) -> Sshd:
    """Create keys and config under `root` and start sshd; the caller stops it."""
    root.mkdir(parents=True, exist_ok=True)
    host_key = root / "ssh_host_ed25519_key"
    if not host_key.exists():
        keygen(host_key)
    if client_key is None:
        client_key = root / "id_ed25519"
        if not client_key.exists():
            keygen(client_key)
    user = (
        os.environ.get("USER")
        or subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    )
    server = Sshd(
        root, port or free_port(), user, client_key, host_key, extra_config, sftp_args, subsystem
    )
    server.start()
    return server
