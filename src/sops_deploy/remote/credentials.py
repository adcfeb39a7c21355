"""The client's SSH identity: the private key (text or file) and its passphrase, loaded
with errors that say what is wrong with the key. Never printed, never in a repr.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from sops_deploy.errors import UsageError

_KEY_CLASSES: tuple[type[paramiko.PKey], ...] = (
    paramiko.Ed25519Key,
    paramiko.ECDSAKey,
    paramiko.RSAKey,
)

SSH_KEY_HINT = (
    "SSH_PRIVATE_KEY must hold a whole private key, from its -----BEGIN … PRIVATE KEY----- "
    "line to its -----END … PRIVATE KEY----- line (ed25519, ecdsa or rsa)"
)


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
