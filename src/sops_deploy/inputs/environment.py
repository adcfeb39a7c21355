"""What the front door takes from the process environment besides options: the secrets
(`AGE_KEY`, `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, `SSH_PRIVATE_KEY`,
`SSH_PRIVATE_KEY_PASSPHRASE`), where the tools live, and the environment child processes
(sops, age-keygen, go, git, `Match exec`) start from — without any secret they do not
need — and where ssh_config, HOME and the ssh-agent are (`ssh_setup`). The sops key
backends' credentials (`backends.TABLE`: AWS, Vault, GnuPG, GCP, Azure) reach the sops
child alone.

`cli.main` hands its environment mapping to these functions; nothing else reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from sops_deploy.defaults import ENV_PREFIX
from sops_deploy.inputs.settings import ToolPlaces
from sops_deploy.sops import backends
from sops_deploy.sops.runner import AgeKeySource

if TYPE_CHECKING:
    from sops_deploy.ssh.sshconfig import SshSetup  # imported where built: not for validate

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
    from sops_deploy.output import hints

    text: str | None = None
    file = key_file or None
    if file is None:
        text = next(
            (environ[n] for n in ("AGE_KEY", "SOPS_AGE_KEY") if environ.get(n, "").strip()), None
        )
    if file is None and text is None:
        file = environ.get("SOPS_AGE_KEY_FILE") or None
    return AgeKeySource(
        text=text,
        file=file,
        base=child_environ(environ),
        ssh_key=secret(environ, "SSH_PRIVATE_KEY"),
        ssh_key_file=ssh_key_file,
        ssh_passphrase=secret(environ, "SSH_PRIVATE_KEY_PASSPHRASE"),
        backend=backends.for_sops(environ),
        interface=hints.interface(dict(environ)),
    )


def child_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a child process (sops, age-keygen, go, git) starts from: this
    process's, without key material, tokens, sops backend credentials (those reach the
    sops child alone, through `AgeKeySource.backend`) or this tool's own SOPS_DEPLOY_*
    inputs."""
    return {
        k: v
        for k, v in environ.items()
        if k not in _NOT_FOR_CHILDREN
        and not k.startswith(ENV_PREFIX)
        and not backends.is_backend(k)
    }


def secret_texts(environ: Mapping[str, str]) -> list[str]:
    """Every secret the environment holds, masked before anything prints: key material
    (`SECRET_ENV`) and the secret backend credentials (`backends.TABLE`)."""
    found = [environ[k] for k in SECRET_ENV if environ.get(k, "").strip()]
    return found + list(backends.secret_values(environ))


def tool_places(environ: Mapping[str, str]) -> ToolPlaces:
    """Where sops and age live: `$RUNNER_TOOL_CACHE/sops-deploy`, else
    `$XDG_CACHE_HOME/sops-deploy`, else `~/.cache/sops-deploy`; `SOPS_DEPLOY_SOPS` names
    the sops to run; tools run in `child_environ(environ)`."""
    runner = environ.get("RUNNER_TOOL_CACHE")
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    if runner:
        cache = Path(runner) / "sops-deploy"
    else:
        cache = Path(environ.get("XDG_CACHE_HOME") or home / ".cache") / "sops-deploy"
    # never inside the cache: a runner's tool cache is shared, the user's state is not
    records = Path(environ.get("XDG_STATE_HOME") or home / ".local" / "state") / "sops-deploy"
    return ToolPlaces(
        cache,
        environ.get(ENV_PREFIX + "SOPS") or None,
        child_environ(environ),
        records / "tools",
    )


def secret(environ: Mapping[str, str], name: str) -> str | None:
    """A secret from the environment (SSH_PRIVATE_KEY, ...), None when unset or empty."""
    return environ.get(name) or None


def ssh_setup(environ: Mapping[str, str], option: str | None, local_user: str) -> SshSetup:
    """ssh_config (`--ssh-config PATH|none`, default ~/.ssh/config), HOME, and the
    environment the agent socket and `Match exec` come from (no secret in it). The config
    is only found here; it is parsed when a host is used."""
    from sops_deploy.ssh import sshconfig

    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    path = sshconfig.config_path(option, home)
    return sshconfig.SshSetup(path, home, child_environ(environ), local_user)


def in_ci(environ: Mapping[str, str]) -> bool:
    """On a GitHub Actions runner (the agent and ~/.ssh/id_* only without a key input)."""
    return environ.get("GITHUB_ACTIONS") == "true"
