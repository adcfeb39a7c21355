"""The SSH deploy key as the age identity: one secret in CI.

sops (≥ 3.10) encrypts for an `ssh-ed25519` (or `ssh-rsa`) public key as an age recipient
and decrypts with the matching SSH private key, which it reads from the file named by
`SOPS_AGE_SSH_PRIVATE_KEY_FILE` (or prints `SOPS_AGE_SSH_PRIVATE_KEY_CMD`). This module
owns handing that key over without it ever touching a disk: the key (passphrase removed,
in memory) goes into an inherited descriptor — a sealed memfd on Linux, a pipe elsewhere —
that sops reads as `/dev/fd/N` (`pass_fds`). Nothing is written to a file on a disk, and
nothing reaches an argv or the environment but the descriptor's name.

Pure: the caller passes the environment; nothing here reads `os.environ`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from sops_deploy.errors import UsageError

SSH_KEY_FILE_ENV = "SOPS_AGE_SSH_PRIVATE_KEY_FILE"
SSH_KEY_CMD_ENV = "SOPS_AGE_SSH_PRIVATE_KEY_CMD"
SSH_RECIPIENT_TYPES = ("ssh-ed25519", "ssh-rsa")
# A pipe holds at least this much on Linux (64 KiB) and macOS (16 KiB): written whole
# before sops starts, so the write never waits for a reader. An RSA-16384 key is ~12 KiB.
PIPE_LIMIT = 16 * 1024


def is_ssh_recipient(recipient: str) -> bool:
    return recipient.split(" ", 1)[0] in SSH_RECIPIENT_TYPES


def normalize(public_line: str) -> str:
    """`type base64` of an SSH public key line (comment dropped), checked for sops."""
    parts = public_line.strip().split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise UsageError(
            "that is not an SSH public key line",
            "pass the .pub file or its line, e.g. `ssh-ed25519 AAAA… deploy`",
        )
    if parts[0] not in SSH_RECIPIENT_TYPES:
        raise UsageError(
            f"sops can encrypt for ssh-ed25519 and ssh-rsa keys, not {parts[0]}",
            "make an ed25519 deploy key: `ssh-keygen -t ed25519 -f deploy_ed25519`",
        )
    return f"{parts[0]} {parts[1]}"


def same_key(recipient: str, public_line: str) -> bool:
    """True when an age recipient from sops metadata is this SSH public key."""
    return recipient.split()[:2] == public_line.split()[:2]


@dataclass(frozen=True)
class SshIdentity:
    """An SSH private key that sops may use as an age identity; never printed."""

    public_line: str  # "ssh-ed25519 AAAA…", safe to show
    private: bytes = field(repr=False)

    def decrypts(self, recipients: Sequence[str]) -> bool:
        return any(same_key(r, self.public_line) for r in recipients)

    @property
    def label(self) -> str:
        """`ssh-ed25519 SHA256:…`, as `ssh-keygen -lf` names the key."""
        import base64
        import hashlib

        kind, blob = self.public_line.split()[:2]
        digest = hashlib.sha256(base64.b64decode(blob)).digest()
        return f"{kind} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def identity_from(key_text: str, passphrase: str | None) -> SshIdentity | None:
    """The SSH key as sops's age identity: OpenSSH format, passphrase removed (sops cannot
    prompt for one), in memory only. None for key types sops cannot use (ecdsa)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    data = key_text.strip().replace("\r\n", "\n").encode() + b"\n"
    load = (
        serialization.load_ssh_private_key
        if b"BEGIN OPENSSH PRIVATE KEY" in data
        else serialization.load_pem_private_key
    )
    key: object
    try:
        key = load(data, None)
    except TypeError:  # encrypted: cryptography wants the password
        if not passphrase:
            raise UsageError(
                "SSH_PRIVATE_KEY is encrypted with a passphrase",
                "set the SSH_PRIVATE_KEY_PASSPHRASE secret",
            ) from None
        try:
            key = load(data, passphrase.encode())
        except (ValueError, TypeError):
            raise UsageError(
                "SSH_PRIVATE_KEY is encrypted and SSH_PRIVATE_KEY_PASSPHRASE does not open it",
                "set SSH_PRIVATE_KEY_PASSPHRASE to the key's passphrase",
            ) from None
    except ValueError:
        raise UsageError(
            "SSH_PRIVATE_KEY is not a readable private key", "paste the whole private key file"
        ) from None
    if not isinstance(key, (ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey)):
        return None
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    return SshIdentity(public.decode(), private)


@contextlib.contextmanager
def pipe_identity(
    identity: SshIdentity,
    env: Mapping[str, str],
    *,
    reads: int = 1,
    memfd: bool | None = None,
) -> Iterator[tuple[dict[str, str], tuple[int, ...]]]:
    """A child environment that gives sops the SSH identity, and the fds to pass.

    Use as `subprocess.run(..., env=child_env, pass_fds=fds)` inside the `with`. sops
    reads its identities once per age recipient of the file, so one read is not enough:

    - Linux (`memfd`): the key is in an anonymous, sealed in-memory file with no path;
      sops opens `/dev/fd/N` (SOPS_AGE_SSH_PRIVATE_KEY_FILE), and every open reads it
      from the start.
    - elsewhere: a pipe holds `reads` copies, and SOPS_AGE_SSH_PRIVATE_KEY_CMD is
      `dd bs=LEN count=1 if=/dev/fd/N`, which takes exactly one copy per read.

    Either way the key is in no file on a disk; both fds are closed on exit."""
    data = identity.private
    use_memfd = hasattr(os, "memfd_create") if memfd is None else memfd
    child = dict(env)
    if use_memfd:
        fd = os.memfd_create("sops-deploy-ssh-identity", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            _write_all(fd, data)
            import fcntl

            fcntl.fcntl(
                fd,
                fcntl.F_ADD_SEALS,
                fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE,
            )
            child[SSH_KEY_FILE_ENV] = f"/dev/fd/{fd}"
            yield child, (fd,)
        finally:
            os.close(fd)
        return
    copies = max(1, min(reads, PIPE_LIMIT // max(1, len(data))))
    if len(data) > PIPE_LIMIT:
        raise UsageError(
            "SSH_PRIVATE_KEY is too large to hand to sops", "use an ed25519 deploy key"
        )
    read_end, write_end = os.pipe()
    try:
        _write_all(write_end, data * copies)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    try:
        child.pop(SSH_KEY_FILE_ENV, None)
        child[SSH_KEY_CMD_ENV] = f"dd bs={len(data)} count=1 if=/dev/fd/{read_end}"
        yield child, (read_end,)
    finally:
        os.close(read_end)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
