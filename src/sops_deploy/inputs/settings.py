"""Typed options: what each command receives once `inputs.py` resolved every input.

`Settings` serves the commands that read secrets (deploy, check, diff, validate, doctor);
the maintainer and helper commands get their own small dataclasses. The parsers here
turn one text into one checked value (a host, a file mode, a remote path) and raise a
`UsageError` in the words of the flag.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sops_deploy.defaults import DEFAULT_FILE, FORMATS
from sops_deploy.errors import UsageError
from sops_deploy.inputs.runinfo import RunInfo
from sops_deploy.sops.runner import AgeKeySource

if TYPE_CHECKING:
    from sops_deploy.ssh.sshconfig import SshSetup

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
    # False when the port is the default, not written: ssh_config's Port may then apply.
    port_given: bool = field(default=True, compare=False, repr=False)

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
    return HostSpec(m["v6"] or m["host"], port, m["user"], port_given=bool(m["port"]))


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


def check_host_text(text: str) -> str:
    """`text` once it parses as `[user@]host[:port]` (kept as text: --port applies later)."""
    parse_host(text)
    return text


def hosts_from(
    texts: Sequence[str], port: int | None = None, user: str | None = None
) -> tuple[HostSpec, ...]:
    """Parse host specs; `port` (--port) and `user` (--user) fill what a host leaves out."""
    hosts = []
    for text in texts:
        spec = parse_host(text)
        if port is not None and f":{spec.port}" not in text.rsplit("]", 1)[-1]:
            spec = HostSpec(spec.host, port, spec.user)
        if user and not spec.user:
            spec = HostSpec(spec.host, spec.port, user, port_given=spec.port_given)
        hosts.append(spec)
    return tuple(hosts)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(
            f"--format {fmt!r} is not one of {', '.join(FORMATS)}",
            "compose is right for Docker Compose env_file; dotenv for python-dotenv",
        )
    return fmt


INTERPOLATE = ("auto", "on", "off")


def check_interpolate(mode: str) -> str:
    if mode not in INTERPOLATE:
        raise UsageError(
            f"--interpolate {mode!r} is not one of {', '.join(INTERPOLATE)}",
            "auto (default) expands ${NAME} naming a key defined above it in the same file; "
            "off keeps every $ as written",
        )
    return mode


def check_glob(pattern: str) -> str:
    """One shell-style key pattern of a target's `keys:` (`DB_*`, `APP_[AB]`, `TOKEN`)."""
    if not pattern.strip() or any(c in pattern for c in "\x00\n\r/"):
        raise UsageError(
            f"{pattern!r} is not a key or a shell-style key pattern",
            "list key names or patterns such as DATABASE_URL or POSTGRES_*",
        )
    return pattern.strip()


def check_post_command(command: str) -> str:
    if "\x00" in command or not command.strip():
        raise UsageError(
            "--post-command is empty or contains a NUL character",
            "pass a shell command such as 'docker compose up -d'",
        )
    return command


DEFAULT_CACHE = Path("~/.cache/sops-deploy").expanduser()
DEFAULT_RECORDS = Path("~/.local/state/sops-deploy/tools").expanduser()
FILES_MODE = 0o400  # the default mode of each file of a `files` target


@dataclass(frozen=True)
class Target:
    """One output on every host: a file for one reader, or (`files`) a directory holding
    one file per key. `keys` are shell-style globs (empty: every key); `line` is where
    sops-deploy.yaml lists it (None: the single target of --remote-path)."""

    remote_path: str
    format: str = "compose"
    keys: tuple[str, ...] = ()
    file_mode: int = 0o600
    post_command: str | None = None
    backup: int = 5
    line: int | None = None
    owner: str | None = None  # --owner USER:GROUP; None: the login user (or what we set)
    validate_command: str | None = None  # run on the temp file (`%s`) before the swap

    @property
    def label(self) -> str:
        """How outputs name the target: its path as configured."""
        return self.remote_path


@dataclass(frozen=True)
class TargetEntry:
    """One entry of `targets:` as sops-deploy.yaml gives it: the fields it sets (attribute
    → checked value; the rest come from the environment) and the line that lists it."""

    values: dict[str, Any]
    line: int


@dataclass(frozen=True)
class ToolPlaces:
    """Where sops and age are found and installed, and the environment they run in.

    Resolved at the front door (`environment.tool_places`): the cache root
    (`$RUNNER_TOOL_CACHE/sops-deploy`, else `$XDG_CACHE_HOME/sops-deploy`, else
    `~/.cache/sops-deploy`), an explicit sops (`SOPS_DEPLOY_SOPS`), the child environment
    without key material, and this user's own `records` of it (sops/toolcheck.py).
    """

    cache: Path
    sops: str | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    records: Path = field(default_factory=lambda: DEFAULT_RECORDS)


# Hosts worked on at once. 32 threads keep a fleet's network waits overlapped (each host
# is ~11 ms of client CPU, the rest is waiting); through a bastion, 10: sshd's default
# MaxStartups (10:30:100) starts refusing new connections past 10 unauthenticated ones.
DEFAULT_PARALLEL = 32
BASTION_PARALLEL = 10


@dataclass(frozen=True)
class Settings:
    """Everything a command needs, validated. Secret fields are kept out of repr."""

    command: str
    files: tuple[str, ...] = (DEFAULT_FILE,)
    required: tuple[str, ...] = ()
    schema: str | None = None
    public_keys: tuple[str, ...] = ()  # keys whose values are shown, not masked
    format: str = "compose"
    allow_empty: bool = False  # a source with no key may deploy (an empty file)
    interpolate: str = "auto"  # ${NAME} of the file's own keys: auto | on | off
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
    parallel: int = DEFAULT_PARALLEL
    fail_fast: bool = False
    follow_symlinks: bool = False
    dry_run: bool = False
    backup: int = 5
    post_command: str | None = None
    rollback_on_failure: bool = True
    post_command_timeout: float = 300.0
    lock_timeout: float = 60.0
    become: bool = False  # write through `sudo -n sftp-server` (and run commands under sudo)
    become_sftp_server: str | None = None  # its path on the server; None: found there
    owner: str | None = None
    validate_command: str | None = None
    canary: int = 0  # deploy the first N hosts first, the rest only when they succeed
    export_env: tuple[str, ...] = ()  # keys (or '*') to export to $GITHUB_ENV
    targets: tuple[Target, ...] = ()  # from `targets:`; empty: one, from remote_path/format
    tools: ToolPlaces = field(default_factory=lambda: ToolPlaces(DEFAULT_CACHE))
    run: RunInfo | None = None  # who, where, which commit: for the lock and the audit line
    # ssh_config, HOME and the agent socket (sshroute/sshkeys); None: none of them
    ssh: SshSetup | None = None
    ci: bool = False  # GITHUB_ACTIONS=true: hints speak of the action's inputs
    stores: Any = field(default=None, repr=False)  # stores.source.StoreAccess for vault://…

    def outputs(self) -> tuple[Target, ...]:
        """Every target on each host: the listed `targets:`, else the one file of
        --remote-path / --format / --file-mode / --post-command / --backup."""
        if self.targets:
            return self.targets
        return (
            Target(
                self.remote_path,
                self.format,
                (),
                self.file_mode,
                self.post_command,
                self.backup,
                owner=self.owner,
                validate_command=self.validate_command,
            ),
        )

    def public_texts(self) -> list[str]:
        """Paths and names the user passed (files, schema, remote paths, hosts, user, jump
        host): no secrets, so never masked inside messages (`redact.Redactor.keep`)."""
        paths = [*self.files, self.schema or "", self.remote_path]
        paths += [t.remote_path for t in self.targets]
        # a path's directory too: the lock, backups and audit log sit beside the file
        texts = [*paths, *(posixpath.dirname(p) for p in paths), self.user or ""]
        for host in (*self.hosts, *((self.jump_host,) if self.jump_host else ())):
            texts += [str(host), host.host]
        return [t for t in texts if len(t) > 1]

    def secret_texts(self) -> list[str]:
        """Key material that must be masked before anything prints."""
        texts = [s for s in (self.age.text, self.ssh_key, self.ssh_passphrase) if s]
        return texts + (self.stores.secret_texts() if self.stores else [])


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
    remote_path: str = "~/app/.env"  # inputs.COMMAND_DEFAULTS["init"]
    ssh_key_file: str | None = None
    ssh_recipient: str | None = None  # "ssh-ed25519 AAAA…": the deploy key also decrypts
    # --age/--kms/--hc-vault-transit/--pgp: (.sops.yaml key, key); none: a new age key
    keys: tuple[tuple[str, str], ...] = ()
    age: AgeKeySource | None = None  # decrypts the round trip when init makes no age key
    action_ref: str = "OWNER/sops-deploy@v1"
    force: bool = False
    yes: bool = False
    delete_plaintext: bool = False
    timeout: float = 20.0
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
