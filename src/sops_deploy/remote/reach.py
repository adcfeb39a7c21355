"""How a host is reached (`Options`): the client identity, host-key trust, default user,
bounds, retries and jump host, and ssh_config's answers; `Connection` takes one."""

from __future__ import annotations

from dataclasses import dataclass

from sops_deploy import defaults
from sops_deploy.inputs.settings import HostSpec
from sops_deploy.remote.credentials import Credentials
from sops_deploy.remote.trust import Trust
from sops_deploy.ssh.sshconfig import Resolved, SshSetup


@dataclass(frozen=True)
class Options:
    """How to reach a host: identity, trust, default user, bounds, retries, jump host; and
    for keys as `ssh` finds them, HOME/agent (`ssh`) and ssh_config's answers (`resolved`)."""

    creds: Credentials
    trust: Trust
    default_user: str
    timeout: float = defaults.TIMEOUT
    retries: int = 0
    jump: HostSpec | None = None
    ssh: SshSetup | None = None
    resolved: Resolved | None = None
    jump_resolved: Resolved | None = None
    ci: bool = False
    become: bool = False  # SFTP through `sudo -n sftp-server`, commands under sudo (`become`)
    become_sftp_server: str | None = None
