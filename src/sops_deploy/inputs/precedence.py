"""The precedence that fills the option table, for one command: flag > `SOPS_DEPLOY_*`
(action inputs) > sops-deploy.yaml > default (`table.py` holds the rows).

Each value is read in its option's kind and checked by its row (range, check); blank
variables (an action input left empty) count as unset, and a command resolves only its
own options (a bad SOPS_DEPLOY_TIMEOUT does not fail `validate`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from sops_deploy.defaults import COMMAND_DEFAULTS, DEFAULT_CONFIG
from sops_deploy.errors import UsageError
from sops_deploy.inputs import settings as checks
from sops_deploy.inputs.table import COMMANDS, OPTIONS, Option

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
    per_command = COMMAND_DEFAULTS.get(command, {})
    for option in pending:
        if option.attr in from_file:
            out[option.attr] = from_file[option.attr]  # checked with its line when loaded
            continue
        late = next((environ[n] for n in option.late_env if environ.get(n, "")), None)
        if late is not None:
            out[option.attr] = finish(option, _from_env(option, option.late_env[0], late))
            continue
        out[option.attr] = per_command.get(option.attr, option.default)  # known good
    return out
