"""`Settings`: every input (flags, then `SOPS_DEPLOY_*` environment, then defaults), validated once.

Secrets never arrive as flags: `AGE_KEY` / `SOPS_AGE_KEY` / `SOPS_AGE_KEY_FILE`,
`SSH_PRIVATE_KEY`, `SSH_PRIVATE_KEY_PASSPHRASE` are read from the environment only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sops_deploy.defaults import DEFAULT_FILE, ENV_PREFIX, FORMATS
from sops_deploy.errors import UsageError
from sops_deploy.sops import AgeKeySource

_HOST_RE = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+))"
    r"(?::(?P<port>[0-9]{1,5}))?$"
)


@dataclass(frozen=True)
class HostSpec:
    """One target server: `[user@]host[:port]`."""

    host: str
    port: int = 22
    user: str | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        return f"{user}{host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH names this host in known_hosts."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def parse_host(text: str, *, what: str = "--host") -> HostSpec:
    """Parse `[user@]host[:port]` or raise a UsageError that shows the accepted forms."""
    m = _HOST_RE.match(text.strip())
    if not m:
        raise UsageError(
            f"{what} {text!r} is not [user@]host[:port]",
            "write it like deploy@example.com:2222 (IPv6 as [::1]:2222)",
        )
    port = int(m["port"]) if m["port"] else 22
    if not 1 <= port <= 65535:
        raise UsageError(
            f"{what} {text!r}: port {port} is out of range 1-65535",
            "use the port sshd listens on (usually 22)",
        )
    return HostSpec(m["v6"] or m["host"], port, m["user"])


def parse_mode(text: str) -> int:
    if not re.fullmatch(r"0?[0-7]{3}", text.strip()):
        raise UsageError(
            f"--file-mode {text!r} is not an octal mode like 0600",
            "use 0600 (owner only) or 0640 (owner + group)",
        )
    mode = int(text, 8)
    if mode & 0o007:
        raise UsageError(
            f"--file-mode {text} makes the secrets readable by every user", "use 0600 or 0640"
        )
    if not mode & 0o400:
        raise UsageError(f"--file-mode {text} leaves the owner unable to read the file", "use 0600")
    return mode


def split_list(text: str | None) -> tuple[str, ...]:
    """Split a comma- or newline-separated list, each item stripped, blanks dropped.

    Not on spaces: a path may hold one, and `--host "my server"` must be reported as the
    one bad host it is, not tried as two."""
    if not text:
        return ()
    return tuple(part.strip() for part in re.split(r"[,\n]", text) if part.strip())


def check_remote_path(path: str) -> str:
    if not path:
        raise UsageError(
            "--remote-path is required for this command",
            "pass the path of the .env on the server, e.g. /srv/app/.env",
        )
    if "\x00" in path or "\n" in path or "\r" in path:
        raise UsageError(
            "--remote-path contains a NUL or newline character",
            "pass a plain path such as /srv/app/.env",
        )
    if not (path.startswith("/") or path.startswith("~/")):
        raise UsageError(
            f"--remote-path {path!r} must be absolute or start with ~/",
            "write it as /srv/app/.env or ~/app/.env",
        )
    if path.endswith("/"):
        raise UsageError(
            f"--remote-path {path!r} names a directory", "name the file itself, e.g. /srv/app/.env"
        )
    return path


@dataclass(frozen=True)
class Settings:
    """Everything a command needs, validated. Secret fields are kept out of repr."""

    command: str
    files: tuple[str, ...] = (DEFAULT_FILE,)
    required: tuple[str, ...] = ()
    schema: str | None = None
    format: str = "compose"
    age: AgeKeySource = field(default_factory=AgeKeySource)
    hosts: tuple[HostSpec, ...] = ()
    user: str | None = None
    remote_path: str = ""
    ssh_key: str | None = field(default=None, repr=False)
    ssh_key_file: str | None = None
    ssh_passphrase: str | None = field(default=None, repr=False)
    known_hosts: str | None = None
    fingerprints: tuple[str, ...] = ()
    insecure_any_host_key: bool = False
    jump_host: HostSpec | None = None
    file_mode: int = 0o600
    timeout: float = 20.0
    retries: int = 2
    parallel: int = 8
    fail_fast: bool = False
    follow_symlinks: bool = False
    dry_run: bool = False
    backup: int = 5
    post_command: str | None = None
    rollback_on_failure: bool = True
    post_command_timeout: float = 300.0
    lock_timeout: float = 60.0
    json_output: bool = False
    export_env: tuple[str, ...] = ()  # keys (or '*') to export to $GITHUB_ENV

    def secret_texts(self) -> list[str]:
        """Key material that must be masked before anything prints."""
        return [s for s in (self.age.text, self.ssh_key, self.ssh_passphrase) if s]


def env_value(env: Mapping[str, str], name: str) -> str | None:
    """`SOPS_DEPLOY_<NAME>` from the environment, None when unset or empty."""
    value = env.get(ENV_PREFIX + name)
    return value if value not in (None, "") else None


def age_source(env: Mapping[str, str], key_file: str | None) -> AgeKeySource:
    if key_file:
        return AgeKeySource(file=key_file)
    for name in ("AGE_KEY", "SOPS_AGE_KEY"):
        if env.get(name, "").strip():
            return AgeKeySource(text=env[name])
    if env.get("SOPS_AGE_KEY_FILE"):
        return AgeKeySource(file=env["SOPS_AGE_KEY_FILE"])
    return AgeKeySource()


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(
            f"--format {fmt!r} is not one of {', '.join(FORMATS)}",
            "compose is right for Docker Compose env_file; dotenv for python-dotenv",
        )
    return fmt


def env_flag(env: Mapping[str, str], name: str) -> bool | None:
    value = env_value(env, name)
    if value is None:
        return None
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"{ENV_PREFIX}{name}={value!r} is not a boolean", "use true or false")


def env_number(env: Mapping[str, str], name: str, kind: type[int] | type[float]) -> float | None:
    value = env_value(env, name)
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        raise UsageError(
            f"{ENV_PREFIX}{name}={value!r} is not a number", "use digits only"
        ) from None


def environ() -> dict[str, str]:
    return dict(os.environ)
