"""OpenSSH client configuration (`~/.ssh/config`): resolve a host alias the way `ssh` does.

Owns reading ssh_config text: `Host` and `Match` blocks, `Include`, first-obtained-value-
wins, and the keywords a deploy needs (HostName, User, Port, IdentityFile, IdentitiesOnly,
IdentityAgent, ProxyJump). Pure: the caller passes the path, HOME, the environment and the
local user name; nothing here reads `os.environ`. Parsed only when a host is looked up.

Why not `paramiko.SSHConfig`: it has no `Include`, matches `Host` patterns with fnmatch
(`[...]` classes OpenSSH does not have), takes HOME and the user from the process, and runs
`Match exec` through `invoke` (imported for that alone). Here `Match exec` is run with
`/bin/sh -c`, like OpenSSH, and only when a config has one.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sops_deploy.errors import UsageError

DISABLE = "none"
MAX_INCLUDE_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH
KEYWORDS = (
    "hostname",
    "user",
    "port",
    "identityfile",
    "identitiesonly",
    "identityagent",
    "proxyjump",
    "proxycommand",
)
# Match criteria that never hold for a deploy (no canonicalization, no tags, no command).
_NEVER = ("canonical", "tagged", "command", "localnetwork", "sessiontype", "version")
_KEYWORD_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*)\s*(?:=\s*|\s+)(.*?)\s*$")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Setting:
    """One value the config gave, and where: shown by `doctor`."""

    keyword: str
    value: str
    origin: str  # "path line N"


@dataclass(frozen=True)
class Resolved:
    """What ssh_config says about one alias (None: the config does not set it)."""

    alias: str
    hostname: str
    port: int | None = None
    user: str | None = None
    identity_files: tuple[str, ...] = ()
    identities_only: bool = False
    identity_agent: str | None = None  # a socket path, "none", or None (SSH_AUTH_SOCK)
    proxy_jump: str | None = None
    settings: tuple[Setting, ...] = ()
    source: str | None = None

    @property
    def changed(self) -> bool:
        """True when the config sets anything for this alias."""
        return bool(self.settings)


@dataclass
class _Context:
    home: Path
    env: Mapping[str, str]
    local_user: str
    alias: str
    user: str | None
    final: bool
    values: dict[str, list[Setting]] = field(default_factory=dict)
    wants_final: bool = False


@dataclass(frozen=True)
class SshSetup:
    """What reading ssh_config needs: the file (None: none), HOME, environment, local user."""

    config: Path | None
    home: Path
    env: Mapping[str, str]
    local_user: str

    def lookup(self, alias: str, user: str | None = None) -> Resolved:
        return resolve(
            alias,
            self.config,
            home=self.home,
            env=self.env,
            local_user=self.local_user,
            user=user,
        )


def config_path(option: str | None, home: Path) -> Path | None:
    """The ssh_config to read: `--ssh-config PATH`, `none` for none, else ~/.ssh/config if any."""
    if option is not None and option.strip().lower() == DISABLE:
        return None
    if option:
        path = Path(option).expanduser() if not option.startswith("~/") else home / option[2:]
        if not path.is_file():
            raise UsageError(
                f"--ssh-config {option}: no such file",
                "pass the path of an ssh_config file, or `none` to read none",
            )
        return path
    default = home / ".ssh" / "config"
    return default if default.is_file() else None


def resolve(
    alias: str,
    path: Path | None,
    *,
    home: Path,
    env: Mapping[str, str],
    local_user: str,
    user: str | None = None,
) -> Resolved:
    """Resolve `alias` through the config at `path` (None: no config) like `ssh alias` does.

    `user` is the user given for this host (user@host), if any, for `Match user`.
    """
    host = alias  # OpenSSH matches patterns against the name as typed, then lowercases it
    if path is None:
        return Resolved(alias, host.lower())
    ctx = _Context(home, env, local_user, host, user, final=False)
    _read(path, ctx, active=True, depth=0)
    if ctx.wants_final:  # OpenSSH re-reads the config once more for `Match final`
        first = ctx.values
        ctx = _Context(home, env, local_user, host, user, final=True, values=dict(first))
        _read(path, ctx, active=True, depth=0)
    return _result(alias, host, ctx, str(path))


def _first(ctx: _Context, keyword: str) -> str | None:
    found = ctx.values.get(keyword)
    return found[0].value if found else None


def _result(alias: str, host: str, ctx: _Context, source: str) -> Resolved:
    hostname = _first(ctx, "hostname")
    hostname = (host if hostname is None else _tokens(hostname, ctx, host, {"h": host})).lower()
    port_text = _first(ctx, "port")
    port = None
    if port_text is not None:
        origin = ctx.values["port"][0].origin
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise UsageError(
                f"{origin}: Port {port_text!r} is not a port number 1-65535",
                "fix the Port line in your ssh config (or pass --ssh-config none)",
            )
        port = int(port_text)
    proxy_command = _first(ctx, "proxycommand")
    if proxy_command is not None and proxy_command.lower() != DISABLE:
        raise UsageError(
            f"{ctx.values['proxycommand'][0].origin}: ProxyCommand for {alias} is not "
            "supported by sops-deploy",
            "use ProxyJump (one hop) instead, or pass --jump-host; or --ssh-config none",
        )
    user = _first(ctx, "user")
    jump = _first(ctx, "proxyjump")
    agent = _first(ctx, "identityagent")
    files: list[str] = []
    for setting in ctx.values.get("identityfile", []):
        if setting.value.lower() == DISABLE:
            continue
        expanded = _tokens(setting.value, ctx, host, {"h": hostname})
        if expanded not in files:
            files.append(expanded)
    settings = tuple(s for k in KEYWORDS for s in ctx.values.get(k, [])[:1]) + tuple(
        ctx.values.get("identityfile", [])[1:]
    )
    return Resolved(
        alias=alias,
        hostname=hostname,
        port=port,
        user=user,
        identity_files=tuple(files),
        identities_only=(_first(ctx, "identitiesonly") or "no").lower() == "yes",
        identity_agent=_tokens(agent, ctx, host, {"h": hostname}) if agent else None,
        proxy_jump=None if jump is None or jump.lower() == DISABLE else jump,
        settings=settings,
        source=source,
    )


def _read(path: Path, ctx: _Context, *, active: bool, depth: int) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot read ({exc.strerror})",
            "fix its permissions, or pass --ssh-config none to read no ssh config",
        ) from None
    block_active = active
    for number, raw in enumerate(text.splitlines(), start=1):
        origin = f"{path} line {number}"
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _KEYWORD_LINE.match(line)
        if not m:
            raise UsageError(f"{origin}: cannot parse this line", "see `man ssh_config`")
        keyword, rest = m[1].lower(), m[2]
        try:
            args = shlex.split(rest, comments=True)
        except ValueError:
            raise UsageError(f"{origin}: unbalanced quotes", "close the quote") from None
        if keyword == "host":
            block_active = active and _host_matches(args, ctx.alias)
        elif keyword == "match":
            block_active = active and _match(args, ctx, origin)
        elif keyword == "include":
            if block_active:
                _include(args, ctx, origin, depth)
        elif block_active and keyword in KEYWORDS and args:
            value = " ".join(args) if keyword == "proxycommand" else args[0]
            setting = Setting(keyword, value, origin)
            known = ctx.values.setdefault(keyword, [])
            if keyword == "identityfile" or not known:
                known.append(setting)


def _include(args: list[str], ctx: _Context, origin: str, depth: int) -> None:
    import glob

    if depth + 1 > MAX_INCLUDE_DEPTH:
        raise UsageError(f"{origin}: Include nested too deeply", "check for an Include loop")
    for pattern in args:
        if pattern.startswith("~/"):
            pattern = str(ctx.home / pattern[2:])
        elif not pattern.startswith("/"):
            pattern = str(ctx.home / ".ssh" / pattern)
        for found in sorted(glob.glob(pattern)):
            _read(Path(found), ctx, active=True, depth=depth + 1)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body + r"\Z", re.DOTALL)


def pattern_list_matches(patterns: list[str], name: str) -> bool:
    """OpenSSH's match_pattern_list: any positive pattern matches and no `!pattern` does.

    Patterns use `*` and `?` only; a comma-separated list counts as several patterns."""
    matched = False
    for item in (p for arg in patterns for p in arg.split(",") if p):
        negate = item.startswith("!")
        if _pattern_regex(item[1:] if negate else item).match(name):
            if negate:
                return False
            matched = True
    return matched


def _host_matches(patterns: list[str], host: str) -> bool:
    return pattern_list_matches(patterns, host)


def _match(args: list[str], ctx: _Context, origin: str) -> bool:
    """Every criterion of a `Match` line must hold (OpenSSH's match_cfg_line)."""
    if not args:
        raise UsageError(f"{origin}: Match needs a criterion", "e.g. `Match host *.example.com`")
    result = True
    i = 0
    while i < len(args):
        word = args[i]
        negate = word.startswith("!")
        criterion = word[1:].lower() if negate else word.lower()
        i += 1
        if criterion == "all":
            holds = True
        elif criterion == "final":
            ctx.wants_final = True
            holds = ctx.final
        elif criterion in _NEVER:
            holds = False
            if criterion != "canonical":  # the others take an argument
                i += 1
        else:
            if i >= len(args):
                raise UsageError(f"{origin}: Match {criterion} needs an argument", "see ssh_config")
            arg = args[i]
            i += 1
            holds = _criterion(criterion, arg, ctx, origin) if result else False
        if negate:
            holds = not holds
        result = result and holds
    return result


def _criterion(criterion: str, arg: str, ctx: _Context, origin: str) -> bool:
    hostname = _first(ctx, "hostname")
    current = ctx.alias  # `host` and %h: the name after HostName, as OpenSSH matches it
    if hostname:
        current = _tokens(hostname, ctx, ctx.alias, {"h": ctx.alias}).lower()
    if criterion == "host":
        return pattern_list_matches([arg], current)
    if criterion == "originalhost":
        return pattern_list_matches([arg], ctx.alias)
    if criterion == "user":
        return pattern_list_matches([arg], ctx.user or _first(ctx, "user") or ctx.local_user)
    if criterion == "localuser":
        return pattern_list_matches([arg], ctx.local_user)
    if criterion == "exec":
        return _exec(_tokens(arg, ctx, ctx.alias, {"h": current}), ctx, origin)
    raise UsageError(
        f"{origin}: Match {criterion} is not understood", "see `man ssh_config` for Match"
    )


def _exec(command: str, ctx: _Context, origin: str) -> bool:
    """`Match exec`: run the command with /bin/sh like OpenSSH; exit 0 means it matches."""
    import subprocess  # only for a config that has `Match exec`

    try:
        proc = subprocess.run(
            ["/bin/sh", "-c", command],
            env=dict(ctx.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UsageError(
            f"{origin}: Match exec did not finish within 30s", "make the command return quickly"
        ) from None
    return proc.returncode == 0


def _tokens(value: str, ctx: _Context, original: str, extra: Mapping[str, str]) -> str:
    """Expand `~`, `${VAR}` and the %-tokens a deploy knows (%h %n %d %u %r %p %L %l %%)."""
    if value.startswith("~/"):
        value = str(ctx.home) + value[1:]
    value = _ENV_REF.sub(lambda m: ctx.env.get(m[1], ""), value)
    local = ""
    if "%l" in value or "%L" in value:
        import socket

        local = socket.gethostname()
    table = {
        "%": "%",
        "n": original,
        "d": str(ctx.home),
        "u": ctx.local_user,
        "r": ctx.user or _first(ctx, "user") or ctx.local_user,
        "p": _first(ctx, "port") or "22",
        "l": local,
        "L": local.split(".")[0],
        **extra,
    }
    return re.sub(r"%(.)", lambda m: table.get(m[1], m[0]), value)
