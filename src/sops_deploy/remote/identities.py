"""Which SSH keys to offer a server, in OpenSSH's order, and offering them.

An explicit key (SSH_PRIVATE_KEY or --ssh-key-file) is the only one offered. Without one,
as `ssh` does: the ssh-agent's keys first (SSH_AUTH_SOCK, or ssh_config IdentityAgent),
then the identity files — ssh_config's IdentityFile lines if any, else OpenSSH's defaults
~/.ssh/id_rsa, id_ecdsa, id_ecdsa_sk, id_ed25519, id_ed25519_sk, id_xmss, id_dsa (the
order `ssh -G` lists) — skipping files whose key the agent already offered. With
`IdentitiesOnly yes`, only agent keys that match an identity file are offered.

Pure: HOME, the environment and the ssh_config answers come in as arguments. Keys are
never printed; only their type and SHA256 fingerprint are.
"""

from __future__ import annotations

import base64
import contextlib
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from paramiko.agent import AgentSSH

from sops_deploy.errors import RemoteError, UsageError
from sops_deploy.remote.credentials import Credentials, load_private_key
from sops_deploy.ssh.sshconfig import Resolved, SshSetup

DEFAULT_FILES = (
    "id_rsa",
    "id_ecdsa",
    "id_ecdsa_sk",
    "id_ed25519",
    "id_ed25519_sk",
    "id_xmss",
    "id_dsa",
)
AGENT_ENV = "SSH_AUTH_SOCK"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a public key (`ssh-keygen -lf` style)."""
    import hashlib

    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Identity:
    """One key to offer, and where it came from (`ssh-agent`, a file, SSH_PRIVATE_KEY)."""

    source: str
    key: paramiko.PKey = field(repr=False)

    @property
    def label(self) -> str:
        return f"{self.source} ({self.key.get_name()} key {fingerprint(self.key)})"


@dataclass
class Identities:
    """The keys to offer, in order, plus what was looked at and left out (for `doctor`)."""

    keys: list[Identity] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    agent: _SocketAgent | None = field(default=None, repr=False)

    def describe(self) -> str:
        """The keys in the order they will be offered, then what was left out and why."""
        offered = ", ".join(i.label for i in self.keys) or "none"
        return offered + "".join(f"; {note}" for note in self.skipped)

    def close(self) -> None:
        if self.agent is not None:
            self.agent.close()
            self.agent = None

    def __enter__(self) -> Identities:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SocketAgent(AgentSSH):
    """Paramiko's agent client on a socket path we choose (paramiko.Agent would take it
    from the process environment)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(timeout)
        self._sock = conn
        try:
            conn.connect(path)
            self._connect(conn)  # type: ignore[attr-defined]  # AgentSSH's hook
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        self._sock.close()


def agent_socket(env: Mapping[str, str], identity_agent: str | None) -> str | None:
    """The agent socket ssh would use: IdentityAgent (none / SSH_AUTH_SOCK / a path) or env."""
    if identity_agent is not None:
        if identity_agent.lower() == "none":
            return None
        if identity_agent == AGENT_ENV or identity_agent == "$" + AGENT_ENV:
            return env.get(AGENT_ENV) or None
        return identity_agent
    return env.get(AGENT_ENV) or None


def gather(
    explicit: Identity | None,
    *,
    env: Mapping[str, str],
    home: Path,
    identity_files: Sequence[str] = (),
    identities_only: bool = False,
    identity_agent: str | None = None,
    passphrase: str | None = None,
    timeout: float = 10.0,
) -> Identities:
    """The keys to offer, in OpenSSH's order (see the module docstring).

    `identity_files` are ssh_config's IdentityFile paths (already expanded); without any,
    OpenSSH's default files under `home`/.ssh are looked at. `passphrase`
    (SSH_PRIVATE_KEY_PASSPHRASE) is tried on encrypted files; other encrypted files are
    left out with a note, as only the agent can unlock them without a prompt.
    """
    found = Identities()
    if explicit is not None:
        found.keys.append(explicit)
        return found
    files = [Path(f) for f in identity_files] or [home / ".ssh" / n for n in DEFAULT_FILES]
    wanted = {blob for blob in map(_public_blob, files) if blob is not None}
    sock = agent_socket(env, identity_agent)
    offered: set[bytes] = set()
    if sock is not None:
        try:
            found.agent = _SocketAgent(sock, timeout)
        except (OSError, paramiko.SSHException) as exc:
            found.skipped.append(f"ssh-agent at {sock}: not reachable ({_why(exc)})")
        else:
            for agent_key in found.agent.get_keys():
                if identities_only and agent_key.asbytes() not in wanted:
                    continue
                found.keys.append(Identity("ssh-agent", agent_key))
                offered.add(agent_key.asbytes())
    for path in files:
        if not path.is_file():
            continue
        shown = _shown(path, home)
        if _public_blob(path) in offered:
            continue
        try:
            key = load_private_key(path.read_text(encoding="utf-8"), shown, passphrase)
        except UsageError as exc:
            if "passphrase" in exc.message and not passphrase:
                found.skipped.append(
                    f"{exc.message}: add it to ssh-agent (`ssh-add {shown}`) or set "
                    "SSH_PRIVATE_KEY_PASSPHRASE"
                )
            else:
                found.skipped.append(exc.message)
            continue
        except (OSError, UnicodeDecodeError) as exc:
            found.skipped.append(f"{shown}: not readable ({_why(exc)})")
            continue
        if key.asbytes() not in offered:
            found.keys.append(Identity(shown, key))
            offered.add(key.asbytes())
    return found


@dataclass(frozen=True)
class KeyInputs:
    """Where keys come from: the explicit key (SSH_PRIVATE_KEY text or --ssh-key-file) and
    its passphrase, and the agent/HOME/ssh_config setup; never printed."""

    key_text: str | None = field(default=None, repr=False)
    key_file: str | None = None
    passphrase: str | None = field(default=None, repr=False)
    setup: SshSetup | None = None
    ci: bool = False
    timeout: float = 10.0

    @classmethod
    def of(cls, creds: Credentials, setup: SshSetup | None, ci: bool, timeout: float) -> KeyInputs:
        return cls(creds.key_text, creds.key_file, creds.passphrase, setup, ci, timeout)

    def explicit(self) -> Identity | None:
        if self.key_text is not None:
            return Identity(
                "SSH_PRIVATE_KEY",
                load_private_key(self.key_text, "SSH_PRIVATE_KEY", self.passphrase),
            )
        if self.key_file is not None:
            try:
                text = Path(self.key_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(
                    f"--ssh-key-file {self.key_file}: {getattr(exc, 'strerror', None) or exc}",
                    "pass the path of a readable private key file",
                ) from None
            return Identity(self.key_file, load_private_key(text, self.key_file, self.passphrase))
        return None

    def gather(self, resolved: Resolved | None = None) -> Identities:
        """The keys to offer to the host ssh_config resolved as `resolved` (OpenSSH's order)."""
        explicit = self.explicit()
        if explicit is not None or self.setup is None:
            return Identities([explicit] if explicit else [])
        return gather(
            None,
            env=self.setup.env,
            home=self.setup.home,
            identity_files=resolved.identity_files if resolved else (),
            identities_only=resolved.identities_only if resolved else False,
            identity_agent=resolved.identity_agent if resolved else None,
            passphrase=self.passphrase,
            timeout=self.timeout,
        )


def nothing_to_offer(identities: Identities, *, ci: bool) -> UsageError:
    """The error when there is no key at all, with what was looked at."""
    looked = "; ".join(identities.skipped) or "no ssh-agent (SSH_AUTH_SOCK) and no ~/.ssh/id_*"
    hint = (
        "set the SSH_PRIVATE_KEY secret and pass it to the action as `ssh-key`"
        if ci
        else "load a key into ssh-agent (`ssh-add`), create ~/.ssh/id_ed25519, set "
        "SSH_PRIVATE_KEY, or pass --ssh-key-file"
    )
    return UsageError(f"no SSH private key to log in with ({looked})", hint)


def authenticate_within(
    transport: paramiko.Transport, user: str, keys: Identities, where: str, seconds: float
) -> Identity:
    """`authenticate`, the whole exchange bounded by `seconds` (the watchdog speaks before
    Paramiko's own auth timeout, set to twice as long)."""
    from sops_deploy.remote import steps

    transport.auth_timeout = 2 * seconds
    stalled = "the server stopped answering during authentication; check it, or raise --timeout"
    with steps.bounded(transport, seconds, where, "authenticating", stalled):
        return authenticate(transport, user, keys, where)


def authenticate(
    transport: paramiko.Transport, user: str, identities: Identities, where: str
) -> Identity:
    """Offer each key in turn; the first the server accepts logs in. Raises RemoteError
    naming every key tried (type and fingerprint only)."""
    tried: list[str] = []
    for identity in identities.keys:
        try:
            transport.auth_publickey(user, identity.key)
        except paramiko.AuthenticationException:
            tried.append(identity.label)
            continue
        except (paramiko.SSHException, EOFError, OSError) as exc:
            tried.append(identity.label)
            if not transport.is_active():
                raise RemoteError(
                    f"{where}: the server closed the connection after {len(tried)} key(s) "
                    f"({'; '.join(tried)}): {_why(exc)}",
                    "too many keys offered? Set IdentitiesOnly yes and IdentityFile for this "
                    "host in ~/.ssh/config, or pass the right key as SSH_PRIVATE_KEY",
                ) from None
            continue
        if transport.is_authenticated():
            return identity
        tried.append(identity.label + " (needs a further method)")
    raise RemoteError(
        f"{where}: authentication failed for user {user}; tried {'; '.join(tried) or 'no key'}",
        f"add the matching public key to ~{user}/.ssh/authorized_keys on the server, or check "
        "the user name (--user / user@host / User in ~/.ssh/config) "
        "(see docs/faq.md#faq-cannot-connect)",
    )


def public_line(key: paramiko.PKey) -> str:
    """The `ssh-ed25519 AAAA…` line of a key's public half (what a .pub file holds)."""
    return f"{key.get_name()} {key.get_base64()}"


def _public_blob(path: Path) -> bytes | None:
    """The public key blob of an identity file, from its .pub (no passphrase needed)."""
    pub = path.with_name(path.name + ".pub")
    with contextlib.suppress(OSError, ValueError, IndexError):
        return base64.b64decode(pub.read_text(encoding="utf-8").split()[1], validate=True)
    return None


def _shown(path: Path, home: Path) -> str:
    with contextlib.suppress(ValueError):
        return "~/" + str(path.relative_to(home))
    return str(path)


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
