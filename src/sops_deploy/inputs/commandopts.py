"""The typed options of the maintainer and helper commands (hosts, tools, init, rotate,
recipients, doctor): one small record each, built by `options.py` from resolved values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sops_deploy import defaults
from sops_deploy.inputs.settings import DEFAULT_CACHE, HostSpec, Settings, ToolPlaces
from sops_deploy.sops.runner import AgeKeySource


@dataclass(frozen=True)
class HostsOptions:
    """`hosts`: the environment's hosts, as lines or as a matrix JSON list."""

    hosts: tuple[HostSpec, ...]
    json: bool = False


@dataclass(frozen=True)
class ToolsOptions:
    """`tools install`: which tools, from where, verified how."""

    tools: tuple[str, ...]
    source: str  # auto | release | system | go (a mirror is `release` with a base URL)
    places: ToolPlaces
    mirror: str | None = None
    versions: dict[str, str | None] = field(default_factory=dict)  # None: the default
    sha256: dict[str, str | None] = field(default_factory=dict)
    allow_unverified: bool = False


@dataclass(frozen=True)
class InitOptions:
    """`init`: where to set up, what to encrypt and pin, and how bold to be."""

    root: Path
    from_env: Path | None = None
    host: HostSpec | None = None
    remote_path: str = "~/app/.env"  # precedence.COMMAND_DEFAULTS["init"]
    ssh_key_file: str | None = None
    ssh_recipient: str | None = None  # "ssh-ed25519 AAAA…": the deploy key also decrypts
    # --age/--kms/--hc-vault-transit/--pgp: (.sops.yaml key, key); none: a new age key
    keys: tuple[tuple[str, str], ...] = ()
    age: AgeKeySource | None = None  # decrypts the round trip when init makes no age key
    action_ref: str = "OWNER/sops-deploy@v1"
    force: bool = False
    yes: bool = False
    delete_plaintext: bool = False
    timeout: float = defaults.TIMEOUT
    tools: ToolPlaces = field(default_factory=lambda: ToolPlaces(DEFAULT_CACHE))
    format: str | None = None  # who reads the deployed file; None: ask in a terminal


@dataclass(frozen=True)
class RotateOptions:
    """`rotate`: one key's new value (generated or from stdin), or a new data key."""

    files: tuple[str, ...]
    age: AgeKeySource
    tools: ToolPlaces
    key: str | None = None
    generate: bool = False
    value_stdin: bool = False
    data_key: bool = False
    length: int = 32
    charset: str = "alnum"


@dataclass(frozen=True)
class RecipientsOptions:
    """`recipients add|remove`: one age recipient, the .sops.yaml that lists it."""

    recipient: str
    add: bool
    sops_config: Path
    age: AgeKeySource
    tools: ToolPlaces


@dataclass(frozen=True)
class DoctorOptions:
    """`doctor`: the settings a deploy would use, and the .sops.yaml (if any)."""

    settings: Settings
    sops_config: Path | None
    format_chosen: bool = True  # --format, SOPS_DEPLOY_FORMAT or `format:` named the reader
