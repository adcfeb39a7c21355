"""From a `--host` to where to connect: ssh_config applied to a HostSpec, and the jump host.

What the command line says wins over the config, as with `ssh`: `user@` and `:port` in
`--host`, then `--user`, then the config's User; `--jump-host` over ProxyJump. ProxyJump
is followed for one hop (the jump host is itself looked up in the config, as `ssh -J`
does). Pure: the config path, HOME, environment and local user come in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sops_deploy.inputs.settings import HostSpec, parse_host
from sops_deploy.ssh import sshconfig

if TYPE_CHECKING:
    from sops_deploy.inputs.settings import Settings
from sops_deploy.errors import UsageError
from sops_deploy.ssh.sshconfig import SshSetup

__all__ = ["Route", "SshSetup", "route"]


@dataclass(frozen=True)
class Route:
    """Where to connect for one host, and what ssh_config said about it (for `doctor`)."""

    target: HostSpec
    jump: HostSpec | None
    resolved: sshconfig.Resolved
    jump_resolved: sshconfig.Resolved | None = None

    def describe(self) -> str:
        """What ssh_config set for this host (and its jump host), each with file and line."""
        parts = [_settings(self.resolved)]
        if self.jump_resolved is not None and self.jump_resolved.changed:
            parts.append(f"jump host {self.jump_resolved.alias}: {_settings(self.jump_resolved)}")
        return "; ".join(p for p in parts if p) or "nothing set for this host"


def _settings(resolved: sshconfig.Resolved) -> str:
    shown = {
        "hostname": "HostName",
        "user": "User",
        "port": "Port",
        "identityfile": "IdentityFile",
        "identitiesonly": "IdentitiesOnly",
        "identityagent": "IdentityAgent",
        "proxyjump": "ProxyJump",
    }
    return ", ".join(
        f"{shown.get(s.keyword, s.keyword)} {s.value} ({s.origin})" for s in resolved.settings
    )


def route(
    spec: HostSpec,
    setup: SshSetup,
    *,
    port_given: bool,
    user: str | None = None,
    jump: HostSpec | None = None,
    jump_port_given: bool = True,
) -> Route:
    """Apply ssh_config to `spec` (and to its jump host). `user` is --user; `port_given`
    says whether `spec.port` was written (an explicit :22 beats the config's Port)."""
    resolved = setup.lookup(spec.host, spec.user or user)
    target = _apply(spec, resolved, port_given=port_given, user=user)
    jump_resolved = None
    if jump is None and resolved.proxy_jump is not None:
        jump, jump_port_given = _proxy_jump(resolved)
    if jump is not None:
        jump_resolved = setup.lookup(jump.host, jump.user or user)
        if jump_resolved.proxy_jump is not None and jump_resolved.changed:
            origin = next(s.origin for s in jump_resolved.settings if s.keyword == "proxyjump")
            raise UsageError(
                f"{origin}: the jump host {jump.host} has its own ProxyJump; sops-deploy "
                "follows one hop",
                "connect through one bastion (ProxyJump on the target only), or pass --jump-host",
            )
        jump = _apply(jump, jump_resolved, port_given=jump_port_given, user=user)
    return Route(target, jump, resolved, jump_resolved)


def for_settings(settings: Settings, spec: HostSpec) -> Route | None:
    """Where `spec` really is for a command's settings (None: no ssh_config in use)."""
    if settings.ssh is None or settings.ssh.config is None:
        return None
    jump = settings.jump_host
    return route(
        spec,
        settings.ssh,
        port_given=spec.port_given,
        user=settings.user,
        jump=jump,
        jump_port_given=jump.port_given if jump else True,
    )


def _apply(
    spec: HostSpec, resolved: sshconfig.Resolved, *, port_given: bool, user: str | None
) -> HostSpec:
    port = spec.port if port_given or resolved.port is None else resolved.port
    return HostSpec(resolved.hostname, port, spec.user or user or resolved.user)


def _proxy_jump(resolved: sshconfig.Resolved) -> tuple[HostSpec, bool]:
    text = resolved.proxy_jump or ""
    origin = next(s.origin for s in resolved.settings if s.keyword == "proxyjump")
    if "," in text:
        raise UsageError(
            f"{origin}: ProxyJump {text} has more than one hop; sops-deploy follows one",
            "jump through one bastion, or pass --jump-host",
        )
    hop = text.removeprefix("ssh://")
    spec = parse_host(hop, what=f"{origin}: ProxyJump")
    return spec, hop.rsplit("]", 1)[-1].count(":") == 1
