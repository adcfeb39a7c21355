"""The precedence that fills the option table, for one command: flag > `SOPS_DEPLOY_*`
(action inputs) > sops-deploy.yaml > default (`table.py` holds the rows).

Each value is read in its option's kind and checked by its row (range, check); blank
variables (an action input left empty) count as unset, and a command resolves only its
own options (a bad SOPS_DEPLOY_TIMEOUT does not fail `validate`). Beside each value it
keeps where the value came from (`sources.Origin`), and a refusal names that place.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sops_deploy.defaults import COMMAND_DEFAULTS, DEFAULT_CONFIG
from sops_deploy.errors import UsageError
from sops_deploy.inputs import settings as checks
from sops_deploy.inputs.sources import (
    Origin,
    Source,
    check_number,
    env_origin,
    flag_origin,
    reword,
)
from sops_deploy.inputs.table import COMMANDS, OPTIONS, Option

USES_CONFIG_FILE = (*COMMANDS.keys() - {"tools", "init", "rotate", "recipients"},)

# `file_values(path, env_name)`: the chosen environment's values and each one's origin.
FileValues = Callable[[str, "str | None"], tuple[Mapping[str, Any], Mapping[str, Origin]]]


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


def _from_env(option: Option, text: str, origin: Origin) -> Any:
    """A `SOPS_DEPLOY_*` text in the option's kind; errors name the variable (or input)."""
    kind = option.kind
    if kind == "list":
        return checks.split_list(text) or None
    if kind == "bool":
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"{origin.said(text, quoted=True)} is not a boolean", "use true or false")
    if kind in ("int", "number"):
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            said = origin.said(text, quoted=True)
            raise UsageError(f"{said} is not a number", "use digits only") from None
    return text


def _checked(check: Callable[[Any], Any], option: Option, value: Any, origin: Origin) -> Any:
    """One value through the option's check, its refusal in the words of `origin`."""
    try:
        return check(value)
    except UsageError as exc:
        raise reword(exc, option, str(value), origin) from None


def finish(option: Option, value: Any, origin: Origin | None = None) -> Any:
    """Check and convert a value of the option's kind (from a flag or the environment)."""
    where = origin or flag_origin(option)
    if option.kind in ("int", "number"):
        check_number(option, value, where)
    check = option.check
    if check is None:
        return value
    if option.kind == "list":
        return tuple(_checked(check, option, v, where) for v in value)
    return _checked(check, option, value, where)


@dataclass(frozen=True)
class Resolution:
    """Every option of one command: its value, and where that value came from."""

    values: dict[str, Any]
    sources: dict[str, Origin]


# --- the resolver ----------------------------------------------------------------------


def resolve(
    command: str,
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    file_values: FileValues | None = None,
) -> Resolution:
    """Every option of `command`: flag > SOPS_DEPLOY_* > sops-deploy.yaml > default, and
    where each value came from (`sources.Origin`; its errors are phrased there).

    `flags` holds what argparse parsed (None: not given). `file_values(path, env_name)`
    loads the chosen environment of the config file (see `configfile.layer`); blank
    variables (an action input left empty) count as unset.
    """
    out: dict[str, Any] = {}
    sources: dict[str, Origin] = {}
    pending: list[Option] = []
    for name in COMMANDS[command]:
        option = OPTIONS[name]
        value, origin = _from_flag(option, flags.get(name)), flag_origin(option)
        if value is None:
            for env_name in option.env_names():
                text = environ.get(env_name, "")
                if text != "":
                    origin = env_origin(option, env_name, environ)
                    value = _from_env(option, text, origin)
                    break
        if value is None:
            pending.append(option)
        else:
            out[name], sources[name] = finish(option, value, origin), origin
    from_file, file_origins = _config_file(command, out, file_values)
    per_command = COMMAND_DEFAULTS.get(command, {})
    for option in pending:
        name = option.attr
        if name in from_file:
            out[name] = from_file[name]  # checked with its line when loaded
            sources[name] = file_origins.get(name) or Origin(Source.YAML, option.yaml or name)
            continue
        late = next((n for n in option.late_env if environ.get(n, "")), None)
        if late is not None:
            origin = Origin(Source.ENV, late)
            out[name] = finish(option, _from_env(option, environ[late], origin), origin)
            sources[name] = origin
            continue
        out[name] = per_command.get(name, option.default)  # known good
        sources[name] = Origin(Source.DEFAULT, option.flag or name)
    return Resolution(out, sources)


def _config_file(
    command: str, out: Mapping[str, Any], file_values: FileValues | None
) -> tuple[Mapping[str, Any], Mapping[str, Origin]]:
    """The chosen environment of sops-deploy.yaml (--config, else the default file)."""
    if command not in USES_CONFIG_FILE or file_values is None:
        return {}, {}
    path = out.get("config") or (DEFAULT_CONFIG if os.path.isfile(DEFAULT_CONFIG) else None)
    chosen = out.get("environment")
    if path is None and chosen is not None:
        raise UsageError(
            f"--env {chosen} needs a config file, and {DEFAULT_CONFIG} does not exist",
            f"create {DEFAULT_CONFIG}, or pass --config PATH",
        )
    if path is None:
        return {}, {}
    return file_values(path, chosen)
