"""Every input, resolved once: the one table of options and the precedence that fills it.

Each row of `OPTIONS` is one option (the attribute it fills, flag, `SOPS_DEPLOY_*` names —
the action passes its inputs as these —, `sops-deploy.yaml` key, kind, default, check).
`cli.py` builds the parsers from it, `configfile.py` the keys it accepts, and `resolve`:

    flags > SOPS_DEPLOY_* (action inputs) > sops-deploy.yaml > defaults

for every command, typed. Secrets, the tool cache and the children's environment are
never flags (`environment.py`); vault-sync/aws-sync add their rows from `stores/options.py`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sops_deploy.defaults import COMMAND_DEFAULTS as COMMAND_DEFAULTS
from sops_deploy.defaults import DEFAULT_CONFIG, DEFAULT_FILE, ENV_PREFIX, FORMATS, INIT_KEYS
from sops_deploy.errors import UsageError
from sops_deploy.inputs import serverchecks as ops
from sops_deploy.inputs import settings as checks
from sops_deploy.stores import options as stores

# What an option holds (its argparse type; how its SOPS_DEPLOY_* text and YAML node read):
# str, list (split on commas, newlines), int, number, bool, mode; YAML only: targets, sync.
KINDS = ("str", "list", "int", "number", "bool", "mode", "targets", "sync")


@dataclass(frozen=True)
class Option:
    """One option: where it comes from (flag, environment, config file) and what it must be."""

    attr: str  # the attribute it fills, and the argparse dest
    flag: str | None  # None: not a command-line flag (a positional, or environment only)
    env: tuple[str, ...] = ()  # SOPS_DEPLOY_<name>, first set one wins
    yaml: str | None = None  # the key in sops-deploy.yaml
    kind: str = "str"  # one of KINDS
    default: Any = None
    check: Callable[[Any], Any] | None = None  # validates and converts a value of its kind
    minimum: float | None = None  # numbers: the smallest value allowed
    above: bool = False  # numbers: the minimum itself is not allowed
    maximum: float | None = None  # numbers: the largest value allowed (nan/inf never are)
    path: bool = False  # in sops-deploy.yaml: relative to the file's own directory
    example: str = ""  # a good value to suggest in errors
    help: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    negatable: bool = False  # bool: also --no-FLAG
    late_env: tuple[str, ...] = ()  # unprefixed names read after the config file

    def env_names(self) -> tuple[str, ...]:
        return tuple(ENV_PREFIX + name for name in self.env)


_OPTIONS = [
    # --- source -----------------------------------------------------------------------
    Option("files", "--file", ("FILE",), "files", "list", (DEFAULT_FILE,), path=True,
           metavar="PATH",
           help=f"encrypted file (repeatable; later overrides earlier; default {DEFAULT_FILE})"),
    Option("required", "--required", ("REQUIRED",), "required", "list", (),
           late_env=("REQUIRED_KEYS",), metavar="K1,K2",
           help="keys that must be present and non-empty"),
    Option("schema", "--schema", ("SCHEMA",), "schema", path=True, metavar="PATH",
           help="schema file (schema.yaml or .env.example)"),
    Option("public_keys", "--public-keys", ("PUBLIC_KEYS",), "public-keys", "list", (),
           metavar="K1,K2",
           help="keys whose values are not secrets: shown, never masked (README Masking)"),
    Option("format", "--format", ("FORMAT",), "format", default="compose",
           check=checks.check_format, metavar="FMT",
           help=f"{' | '.join(FORMATS)}: who reads the .env (default compose)"),
    Option("interpolate", "--interpolate", ("INTERPOLATE",), "interpolate", default="auto",
           check=checks.check_interpolate, metavar="auto|on|off",
           help="${NAME} naming a key defined above in the same dotenv file: auto (default) "
           "expands it as Compose does; on: every value as Compose reads it, an undefined "
           "name an error; off: every $ as written"),
    Option("allow_empty", "--allow-empty", ("ALLOW_EMPTY",), "allow-empty", "bool", False,
           help="deploy even a source with no key (writes an empty file)"),
    Option("age_key_file", "--age-key-file", ("AGE_KEY_FILE",), metavar="PATH",
           help="age identity file (default: AGE_KEY / SOPS_AGE_KEY from the environment)"),
    Option("export_env", "--export-env", ("EXPORT_ENV",), kind="list", default=(),
           metavar="K1,K2|*",
           help="on GitHub: export these keys' values (masked) to $GITHUB_ENV for later steps"),
    # --- target -----------------------------------------------------------------------
    Option("hosts", "--host", ("HOST",), "hosts", "list", (), check=checks.check_host_text,
           metavar="[USER@]HOST[:PORT]", help="server to write to (repeatable)"),
    Option("user", "--user", ("USER",), "user", help="SSH user for hosts that do not name one"),
    Option("port", "--port", ("PORT",), "port", "int", minimum=1, maximum=65535, example="22",
           help="SSH port for hosts that do not name one"),
    Option("remote_path", "--remote-path", ("REMOTE_PATH",), "remote-path", default="",
           check=checks.check_remote_path, metavar="PATH", help="the .env path on the server"),
    Option("ssh_key_file", "--ssh-key-file", ("SSH_KEY_FILE",), "ssh-key-file", path=True,
           metavar="PATH",
           help="private key file (default: SSH_PRIVATE_KEY from the environment)"),
    Option("known_hosts", "--known-hosts", ("KNOWN_HOSTS",), "known-hosts", path=True,
           metavar="PATH|LINES",
           help="known_hosts file, or its lines (default ~/.ssh/known_hosts)"),
    Option("fingerprints", "--host-key-fingerprint", ("HOST_KEY_FINGERPRINT",),
           "host-key-fingerprints", "list", (), metavar="SHA256:...",
           help="pin the server's host key fingerprint (repeatable)"),
    Option("insecure_any_host_key", "--insecure-accept-any-host-key",
           ("INSECURE_ACCEPT_ANY_HOST_KEY",), kind="bool", default=False,
           help="DANGEROUS: skip host key verification (warns on every run)"),
    Option("jump_host", "--jump-host", ("JUMP_HOST",), "jump-host",
           check=lambda t: checks.parse_host(t, what="--jump-host"), metavar="[USER@]HOST[:PORT]",
           help="bastion to connect through"),
    Option("ssh_config", "--ssh-config", ("SSH_CONFIG",), "ssh-config", metavar="PATH|none",
           help="ssh_config for host aliases, ProxyJump, IdentityFile "
           "(default ~/.ssh/config; none: read none)"),
    Option("file_mode", "--file-mode", ("FILE_MODE",), "file-mode", "mode", None,
           check=checks.parse_mode, metavar="0600",
           help="mode of the written file (default 0600; 0400 for format files)"),
    Option("timeout", "--timeout", ("TIMEOUT",), "timeout", "number", 20.0, minimum=0,
           above=True, example="20", metavar="S", help="connect/IO timeout (default 20)"),
    Option("retries", "--retries", ("RETRIES",), "retries", "int", 2, minimum=0, example="2",
           metavar="N", help="connection retries (default 2)"),
    Option("parallel", "--parallel", ("PARALLEL",), "parallel", "int", None, minimum=1,
           example="32", metavar="N", help="hosts at once (default 32; 10 via --jump-host)"),
    Option("fail_fast", "--fail-fast", ("FAIL_FAST",), "fail-fast", "bool", False,
           help="stop at the first failed host"),
    Option("follow_symlinks", "--follow-symlinks", ("FOLLOW_SYMLINKS",), "follow-symlinks",
           "bool", False, help="write through a symlink at the target path"),
    Option("targets", None, yaml="targets", kind="targets", default=(),
           help="sops-deploy.yaml only: several outputs per host (see TARGET_FIELDS)"),
    # --- deploy -----------------------------------------------------------------------
    Option("dry_run", "--dry-run", ("DRY_RUN",), kind="bool", default=False,
           help="connect and compare, write nothing"),
    Option("backup", "--backup", ("BACKUP",), "backup", "int", 5, minimum=0, example="5",
           metavar="N", help="keep the newest N backups (default 5; 0: none)"),
    Option("post_command", "--post-command", ("POST_COMMAND",), "post-command",
           check=checks.check_post_command, metavar="CMD",
           help="run CMD in the file's directory after a change"),
    Option("post_command_timeout", "--post-command-timeout", ("POST_COMMAND_TIMEOUT",),
           kind="number", default=300.0, minimum=0, check=lambda s: s or 300.0, metavar="S",
           help="post-command limit (default 300)"),
    Option("rollback_on_failure", "--rollback-on-failure", ("ROLLBACK_ON_FAILURE",),
           "rollback-on-failure", "bool", True, negatable=True,
           help="restore the previous file if the post-command fails (default on)"),
    Option("lock_timeout", "--lock-timeout", ("LOCK_TIMEOUT",), "lock-timeout", "number", 60.0,
           minimum=0, example="60", metavar="S", help="wait for a concurrent deploy (default 60)"),
    Option("become", "--become", ("BECOME",), "become", "bool", False, help="as root via sudo -n"),
    Option("become_sftp_server", "--become-sftp-server", ("BECOME_SFTP_SERVER",),
           "become-sftp-server", metavar="PATH", help="sftp-server path for --become"),
    Option("owner", "--owner", ("OWNER",), "owner", check=ops.check_owner, metavar="USER:GROUP",
           help="owner of the written file (names or ids; needs root or --become)"),
    Option("validate_command", "--validate-command", ("VALIDATE_COMMAND",), "validate-command",
           check=ops.check_validate_command, metavar="CMD", help="check temp file %%s first"),
    Option("canary", "--canary", ("CANARY",), "canary", "int", 0, minimum=0, example="1",
           metavar="N", help="deploy the first N hosts first; the rest only if they succeed"),
    # --- github-sync (YAML: the environment's `github:` section) ------------------------
    Option("repo", "--repo", ("REPO",), "github.repo", late_env=("GITHUB_REPOSITORY",),
           metavar="OWNER/REPO", help="the repository (default GITHUB_REPOSITORY)"),
    Option("github_environment", "--github-environment", ("GITHUB_ENVIRONMENT",),
           "github.environment", metavar="NAME", help="sync the secrets of this environment"),
    Option("dependabot", "--dependabot", ("DEPENDABOT",), "github.dependabot", "bool", False,
           help="sync Dependabot secrets"),
    Option("keys", "--keys", ("KEYS",), "github.keys", "list", (), metavar="K1,K2|GLOB",
           help="the keys to sync (default all)"),
    Option("prefix", "--prefix", ("PREFIX",), "github.prefix", default="", metavar="P",
           help="name each secret P + key"),
    Option("check", "--check", ("CHECK",), kind="bool", default=False,
           help="exit 3 when GitHub differs"), *(Option(**r) for r in stores.ROWS),
    Option("prune", "--prune", ("PRUNE",), "github.prune", "bool", False,
           help="delete names this tool created that left the file"),
    # --- config file ------------------------------------------------------------------
    Option("config", "--config", ("CONFIG",), metavar="PATH",
           help=f"sops-deploy.yaml with named environments (default {DEFAULT_CONFIG} if present)"),
    Option("environment", "--env", ("ENVIRONMENT", "ENV"), metavar="NAME",
           help="the environment in the config file to use"),
    # --- hosts ------------------------------------------------------------------------
    Option("json", "--json", kind="bool", default=False,
           help='print [{"host": ..., "name": ...}]'),
    # --- tools ------------------------------------------------------------------------
    Option("tool", None, default="sops", choices=("sops", "age", "all"), help="default sops"),
    Option("source", "--source", ("SOURCE",), default="auto",
           choices=("auto", "release", "mirror", "system", "go"),
           help="auto (default): release when reachable, else go install; mirror: release "
           "layout under --mirror"),
    Option("mirror", "--mirror", ("MIRROR",), metavar="URL",
           help="base URL laid out like github.com"),
    Option("sops_version", "--sops-version", ("SOPS_VERSION",)),
    Option("age_version", "--age-version", ("AGE_VERSION",)),
    Option("sops_sha256", "--sops-sha256", ("SOPS_SHA256",), metavar="HEX",
           help="SHA-256 of the sops release asset"),
    Option("age_sha256", "--age-sha256", ("AGE_SHA256",), metavar="HEX",
           help="SHA-256 of the age .tar.gz"),
    Option("allow_unverified", "--allow-unverified", ("ALLOW_UNVERIFIED",), kind="bool",
           default=False, help="install a version with no known digest (warns)"),
    # --- maintainer commands (flags only) ---------------------------------------------
    Option("from_env", "--from", metavar="PATH", help="plaintext .env to encrypt"),
    Option("pin_host", "--host", check=checks.parse_host, metavar="[USER@]HOST[:PORT]",
           help="fetch and pin its host key"),
    Option("ssh_recipient", "--ssh-recipient", metavar="PUB|LINE",
           help="also encrypt for this SSH public key (ssh-ed25519 .pub file or line): the "
           "deploy key then decrypts too, so CI needs only SSH_PRIVATE_KEY"),
    *(Option(n, f, kind="list", default=(), metavar=m, help=h) for n, f, m, h in INIT_KEYS),
    Option("action_ref", "--action-ref", default="OWNER/sops-deploy@v1",
           metavar="OWNER/sops-deploy@v1", help="the action the workflow uses"),
    Option("force", "--force", kind="bool", default=False,
           help="overwrite files init wrote before"),
    Option("yes", "--yes", kind="bool", default=False,
           help="answer yes to every prompt (keeps the plaintext)"),
    Option("delete_plaintext", "--delete-plaintext", kind="bool", default=False,
           help="delete --from after a verified encrypt"),
    Option("key", None, metavar="KEY", help="the key whose value to replace"),
    Option("generate", "--generate", kind="bool", default=False,
           help="a random value (never shown)"),
    Option("value_stdin", "--value-stdin", kind="bool", default=False,
           help="read the new value from stdin"),
    Option("data_key", "--data-key", kind="bool", default=False,
           help="sops rotate: a new data key"),
    Option("length", "--length", kind="int", default=32, metavar="N", help="default 32"),
    Option("charset", "--charset", default="alnum",
           help="alnum (default) | hex | urlsafe | alpha | digits | symbols"),
    Option("action", None, choices=("add", "remove")),
    Option("recipient", None, metavar="KEY", help="age1… | KMS ARN | transit URI | PGP key"),
    Option("sops_config", "--sops-config", metavar="PATH",
           help=".sops.yaml (default: here or a parent)"),
]  # fmt: skip
OPTIONS: dict[str, Option] = {o.attr: o for o in _OPTIONS}
YAML_FIELDS: dict[str, Option] = {o.yaml: o for o in _OPTIONS if o.yaml and "." not in o.yaml}
# An environment's `github:` section (github-sync), keyed by the name inside it.
GITHUB_FIELDS: dict[str, Option] = {
    o.yaml.removeprefix("github."): o for o in _OPTIONS if o.yaml and o.yaml.startswith("github.")
}
REQUIRED_YAML = ("hosts", "remote-path")  # `targets:` stands in for remote-path
# The keys of one entry of `targets:`: each checked by the same row as the option.
TARGET_FIELDS: dict[str, Option] = {
    "remote-path": OPTIONS["remote_path"],
    "format": OPTIONS["format"],
    "keys": Option("keys", None, yaml="keys", kind="list", check=checks.check_glob),
    "file-mode": OPTIONS["file_mode"],
    "post-command": OPTIONS["post_command"],
    "backup": OPTIONS["backup"],
    "owner": OPTIONS["owner"],
    "validate-command": OPTIONS["validate_command"],
}

# Which options each command has. The parsers are built from these groups, and only a
# command's own options are resolved (a bad SOPS_DEPLOY_TIMEOUT does not fail `validate`).
SOURCE = ("files", "required", "schema", "public_keys", "format", "interpolate", "allow_empty",
          "age_key_file")  # fmt: skip
TARGET = (
    "hosts", "user", "port", "remote_path", "ssh_key_file", "known_hosts", "fingerprints",
    "insecure_any_host_key", "jump_host", "file_mode", "timeout", "retries", "parallel",
    "fail_fast", "follow_symlinks", "ssh_config", "become", "become_sftp_server",
)  # fmt: skip
SAFETY = ("backup", "post_command", "post_command_timeout", "rollback_on_failure", "lock_timeout",
          "owner", "validate_command", "canary")  # fmt: skip
CONFIG = ("config", "environment")
TOOLS = ("tool", "source", "mirror", "sops_version", "age_version", "sops_sha256",
         "age_sha256", "allow_unverified")  # fmt: skip
DOCTOR_HOSTS = ("hosts", "user", "port", "remote_path", "ssh_key_file", "known_hosts",
                "fingerprints", "timeout", "ssh_config")  # fmt: skip
GITHUB_SYNC = ("repo", "github_environment", "dependabot", "keys", "prefix", "dry_run",
               "check", "prune")  # fmt: skip
COMMANDS: dict[str, tuple[str, ...]] = {
    "deploy": (*TARGET, *SOURCE, *CONFIG, "targets", "dry_run", *SAFETY, "export_env"),
    "check": (*TARGET, *SOURCE, *CONFIG, "targets"),
    "diff": (*TARGET, *SOURCE, *CONFIG, "targets"),
    "validate": (*SOURCE, *CONFIG, "targets", "export_env"),
    "hosts": ("json", "hosts", "user", "port", *CONFIG),
    "tools": TOOLS,
    "init": ("from_env", "pin_host", "remote_path", "ssh_key_file", "ssh_recipient", "force",
             *(k[0] for k in INIT_KEYS), "action_ref", "yes", "delete_plaintext", "timeout",
             "format"),
    "rotate": ("key", "generate", "value_stdin", "data_key", "length", "charset", "files",
               "age_key_file"),
    "recipients": ("action", "recipient", "sops_config", "age_key_file"),
    "doctor": (*SOURCE, "sops_config", *DOCTOR_HOSTS, *CONFIG),
    "github-sync": (*SOURCE, *CONFIG, *GITHUB_SYNC),
    **{name: (*SOURCE, *CONFIG, *own) for name, own in stores.COMMANDS.items()},
}  # fmt: skip
USES_CONFIG_FILE = (*COMMANDS.keys() - {"tools", "init", "rotate", "recipients"},)

FileValues = Callable[[str, "str | None"], Mapping[str, Any]]


# --- one value from each source ---------------------------------------------------------


def _from_flag(option: Option, value: Any) -> Any:
    """The flag's value in the option's kind, or None when the flag was not given."""
    if value is None:
        return None
    if option.kind == "list":
        items = [value] if isinstance(value, str) else list(value)
        parts = tuple(p for item in items for p in checks.split_list(item))
        return parts or None
    return value


def _from_env(option: Option, name: str, text: str) -> Any:
    """A `SOPS_DEPLOY_*` text in the option's kind; errors name the variable."""
    kind = option.kind
    if kind == "list":
        return checks.split_list(text) or None
    if kind == "bool":
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"{name}={text!r} is not a boolean", "use true or false")
    if kind in ("int", "number"):
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            raise UsageError(f"{name}={text!r} is not a number", "use digits only") from None
    return text


def check_number(option: Option, value: float) -> None:
    """The table's range for a number, in the words of its flag; nan and inf never pass
    (a nan compares false with every bound, and an inf timeout means no limit)."""
    flag = option.flag or option.attr
    good = f"use {flag} {option.default:g}" if option.default is not None else ""
    if not good and option.example:
        good = f"use {flag} {option.example}"
    if not math.isfinite(value):
        raise UsageError(f"{flag} {value} is not a finite number", good or "use digits only")
    if option.maximum is not None and value > option.maximum:
        raise UsageError(f"{flag} {value:g} must be at most {option.maximum:g}", good)
    if option.minimum is None:
        return
    if option.above and value <= option.minimum:
        raise UsageError(f"{flag} {value:g} must be positive", good)
    if value < option.minimum:
        if option.minimum == 0:
            raise UsageError(f"{flag} {value:g} must not be negative", good)
        raise UsageError(f"{flag} {value:g} must be at least {option.minimum:g}", good)


def finish(option: Option, value: Any) -> Any:
    """Check and convert a value of the option's kind (from a flag or the environment)."""
    if option.kind in ("int", "number"):
        check_number(option, value)
    if option.check is None:
        return value
    if option.kind == "list":
        return tuple(option.check(v) for v in value)
    return option.check(value)


# --- the resolver ----------------------------------------------------------------------


def resolve(
    command: str,
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    file_values: FileValues | None = None,
) -> dict[str, Any]:
    """Every option of `command`: flag > SOPS_DEPLOY_* > sops-deploy.yaml > default.

    `flags` holds what argparse parsed (None: not given). `file_values(path, env_name)`
    loads the chosen environment of the config file (see `configfile.values`); blank
    variables (an action input left empty) count as unset.
    """
    names = COMMANDS[command]
    out: dict[str, Any] = {}
    pending: list[Option] = []
    for name in names:
        option = OPTIONS[name]
        value = _from_flag(option, flags.get(name))
        if value is None:
            for env_name in option.env_names():
                text = environ.get(env_name, "")
                if text != "":
                    value = _from_env(option, env_name, text)
                    break
        if value is None:
            pending.append(option)
        else:
            out[name] = finish(option, value)
    from_file: Mapping[str, Any] = {}
    if command in USES_CONFIG_FILE and file_values is not None:
        path = out.get("config") or (DEFAULT_CONFIG if os.path.isfile(DEFAULT_CONFIG) else None)
        chosen = out.get("environment")
        if path is None and chosen is not None:
            raise UsageError(
                f"--env {chosen} needs a config file, and {DEFAULT_CONFIG} does not exist",
                f"create {DEFAULT_CONFIG}, or pass --config PATH",
            )
        if path is not None:
            from_file = file_values(path, chosen)
    defaults = COMMAND_DEFAULTS.get(command, {})
    for option in pending:
        if option.attr in from_file:
            out[option.attr] = from_file[option.attr]  # checked with its line when loaded
            continue
        late = next((environ[n] for n in option.late_env if environ.get(n, "")), None)
        if late is not None:
            out[option.attr] = finish(option, _from_env(option, option.late_env[0], late))
            continue
        out[option.attr] = defaults.get(option.attr, option.default)  # known good
    return out
