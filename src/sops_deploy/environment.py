"""What the front door takes from the process environment besides options: the secrets
(`AGE_KEY`, `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, `SSH_PRIVATE_KEY`,
`SSH_PRIVATE_KEY_PASSPHRASE`), where the tools live, and the environment child processes
(sops, age-keygen, go, git) start from — without any secret they do not need.

`cli.main` hands its environment mapping to these functions; nothing else reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sops_deploy.config import ToolPlaces
from sops_deploy.defaults import ENV_PREFIX
from sops_deploy.sops import AgeKeySource

# Environment variables that hold key material: masked before anything prints, and never
# passed on to a child process (sops gets its identity explicitly, see `AgeKeySource`).
SECRET_ENV = ("AGE_KEY", "SOPS_AGE_KEY", "SSH_PRIVATE_KEY", "SSH_PRIVATE_KEY_PASSPHRASE")
_NOT_FOR_CHILDREN = (*SECRET_ENV, "SOPS_AGE_KEY_FILE", "GITHUB_TOKEN", "GH_TOKEN")


def age_source(environ: Mapping[str, str], key_file: str | None) -> AgeKeySource:
    """Where sops gets the age identity, and the rest of its environment (no other secret)."""
    base = child_environ(environ)
    if key_file:
        return AgeKeySource(file=key_file, base=base)
    for name in ("AGE_KEY", "SOPS_AGE_KEY"):
        if environ.get(name, "").strip():
            return AgeKeySource(text=environ[name], base=base)
    if environ.get("SOPS_AGE_KEY_FILE"):
        return AgeKeySource(file=environ["SOPS_AGE_KEY_FILE"], base=base)
    return AgeKeySource(base=base)


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
