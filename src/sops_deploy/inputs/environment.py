"""What the front door takes from the process environment besides options: the secrets
(`AGE_KEY`, `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, `SSH_PRIVATE_KEY`,
`SSH_PRIVATE_KEY_PASSPHRASE`), where the tools live, and the environment child processes
(sops, age-keygen, go, git) start from — without any secret they do not need — and
where ssh_config, HOME and the ssh-agent are (`ssh_setup`).

`cli.main` hands its environment mapping to these functions; nothing else reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sops_deploy.defaults import ENV_PREFIX
from sops_deploy.inputs.settings import ToolPlaces
from sops_deploy.sops.runner import AgeKeySource
from sops_deploy.ssh.sshconfig import SshSetup

# Environment variables that hold key material: masked before anything prints, and never
# passed on to a child process (sops gets its identity explicitly, see `AgeKeySource`).
SECRET_ENV = ("AGE_KEY", "SOPS_AGE_KEY", "SSH_PRIVATE_KEY", "SSH_PRIVATE_KEY_PASSPHRASE")
_NOT_FOR_CHILDREN = (*SECRET_ENV, "SOPS_AGE_KEY_FILE", "GITHUB_TOKEN", "GH_TOKEN")


def age_source(
    environ: Mapping[str, str], key_file: str | None, ssh_key_file: str | None = None
) -> AgeKeySource:
    """Where sops gets the age identity, and the rest of its environment (no other secret).

    The SSH key (SSH_PRIVATE_KEY, else `ssh_key_file`) comes along: sops gets it as an
    age identity for files encrypted for it (`init --ssh-recipient`)."""
    base = child_environ(environ)
    ssh = {
        "ssh_key": secret(environ, "SSH_PRIVATE_KEY"),
        "ssh_key_file": ssh_key_file,
        "ssh_passphrase": secret(environ, "SSH_PRIVATE_KEY_PASSPHRASE"),
    }
    if key_file:
        return AgeKeySource(file=key_file, base=base, **ssh)
    for name in ("AGE_KEY", "SOPS_AGE_KEY"):
        if environ.get(name, "").strip():
            return AgeKeySource(text=environ[name], base=base, **ssh)
    if environ.get("SOPS_AGE_KEY_FILE"):
        return AgeKeySource(file=environ["SOPS_AGE_KEY_FILE"], base=base, **ssh)
    return AgeKeySource(base=base, **ssh)


def child_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a child process (sops, age-keygen, go, git) starts from: this
    process's, without key material, tokens or this tool's own SOPS_DEPLOY_* inputs."""
    return {
        k: v
        for k, v in environ.items()
        if k not in _NOT_FOR_CHILDREN and not k.startswith(ENV_PREFIX)
    }


def tool_places(environ: Mapping[str, str]) -> ToolPlaces:
    """Where sops and age live: `$RUNNER_TOOL_CACHE/sops-deploy`, else
    `$XDG_CACHE_HOME/sops-deploy`, else `~/.cache/sops-deploy`; `SOPS_DEPLOY_SOPS` names
    the sops to run; tools run in `child_environ(environ)`."""
    runner = environ.get("RUNNER_TOOL_CACHE")
    if runner:
        cache = Path(runner) / "sops-deploy"
    else:
        home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
        cache = Path(environ.get("XDG_CACHE_HOME") or home / ".cache") / "sops-deploy"
    return ToolPlaces(cache, environ.get(ENV_PREFIX + "SOPS") or None, child_environ(environ))


def secret(environ: Mapping[str, str], name: str) -> str | None:
    """A secret from the environment (SSH_PRIVATE_KEY, ...), None when unset or empty."""
    return environ.get(name) or None


def ssh_setup(environ: Mapping[str, str], option: str | None, local_user: str) -> SshSetup:
    """ssh_config (`--ssh-config PATH|none`, default ~/.ssh/config), HOME, and the
    environment the agent socket and `Match exec` come from (no secret in it). The config
    is only found here; it is parsed when a host is used."""
    from sops_deploy.ssh import sshconfig

    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return SshSetup(sshconfig.config_path(option, home), home, child_environ(environ), local_user)


def in_ci(environ: Mapping[str, str]) -> bool:
    """On a GitHub Actions runner (the agent and ~/.ssh/id_* only without a key input)."""
    return environ.get("GITHUB_ACTIONS") == "true"
