"""Host-key trust: which server keys are accepted (known_hosts as OpenSSH reads it — see
`knownhosts` —, pinned SHA256 fingerprints, or the loud opt-out), and the one check that
applies it.

`verify_host_key` is the single place a server key is judged; the connection calls it
right after the key exchange and before authenticating.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from sops_deploy.errors import HostKeyError, UsageError
from sops_deploy.inputs.settings import HostSpec
from sops_deploy.ssh import knownhosts


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


def another_type_may_be_pinned(
    shown: list[paramiko.PKey], offerable: tuple[str, ...], trust: Trust
) -> bool:
    """A fingerprint does not say its key type: when the key shown is not pinned, the
    server is asked again for the types not seen yet, while there are any."""
    if not trust.fingerprints or fingerprint(shown[-1]) in trust.fingerprints:
        return False
    refused = tuple(k.get_name() for k in shown)
    return bool(knownhosts.key_type_preference(offerable, (), refused))


def pinned_or_first(
    shown: list[paramiko.PKey], trust: Trust
) -> tuple[paramiko.PKey, tuple[str, ...]]:
    """The key to judge (the pinned one if the server showed it, else the first) and the
    others it showed, as `type fingerprint` for the error message."""
    key = next((k for k in shown if fingerprint(k) in trust.fingerprints), shown[0])
    return key, tuple(f"{k.get_name()} {fingerprint(k)}" for k in shown if k is not key)
