"""Where each resolved value came from, and errors in the words of that place.

`precedence.resolve` records, beside every value, the `Origin` the user wrote it in: a
flag (`--timeout 0`), a `SOPS_DEPLOY_*` variable (`SOPS_DEPLOY_TIMEOUT=0`), an action
input (`timeout: 0` under the workflow's `with:`; the action passes its inputs as those
variables and sets `SOPS_DEPLOY_INTERFACE=action`), a key of sops-deploy.yaml (file and
line), or the default (like click's ParameterSource).

The table's checks are written once, naming the flag (as hints are: `hints.py`); `reword`
restates a check's refusal in the words of the place the value came from, and
`check_number` (the table's ranges) phrases its own.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sops_deploy.errors import UsageError
from sops_deploy.output import hints

if TYPE_CHECKING:
    from sops_deploy.inputs.table import Option


class Source(enum.Enum):
    FLAG = "flag"
    ENV = "variable"
    ACTION_INPUT = "action input"
    YAML = "sops-deploy.yaml"
    DEFAULT = "default"


@dataclass(frozen=True)
class Origin:
    """One value's place: its source and the name the user wrote there (`--timeout`,
    `SOPS_DEPLOY_TIMEOUT`, the input `timeout`, the YAML key `timeout`)."""

    source: Source
    name: str
    file: str | None = None
    line: int | None = None

    def said(self, text: str, *, quoted: bool = False) -> str:
        """The value as the user wrote it there: `--format 'x'`, `SOPS_DEPLOY_FORMAT='x'`,
        input `format: x`, `sops-deploy.yaml:7: `format: x``."""
        if self.source is Source.ACTION_INPUT:
            return f"input `{self.name}: {text}`"
        if self.source is Source.YAML:
            return f"{self.file}:{self.line}: `{self.name}: {text}`"
        shown = repr(text) if quoted else text
        if self.source is Source.ENV:
            return f"{self.name}={shown}"
        return f"{self.name} {shown}"

    def named(self) -> str:
        """The place without the value (for a refusal that does not show it)."""
        if self.source is Source.ACTION_INPUT:
            return f"input `{self.name}:`"
        if self.source is Source.YAML:
            return f"{self.file}:{self.line}: `{self.name}`"
        return self.name

    def use(self, good: str) -> str:
        """The fix that writes `good` in the same place."""
        if self.source is Source.ACTION_INPUT:
            return f"set the input `{self.name}: {good}`"
        if self.source is Source.YAML:
            return f"write `{self.name}: {good}` in {self.file}"
        if self.source is Source.ENV:
            return f"set {self.name}={good}"
        return f"use {self.name} {good}"


def flag_origin(option: Option) -> Origin:
    return Origin(Source.FLAG, option.flag or option.attr)


def env_origin(option: Option, name: str, environ: Mapping[str, str]) -> Origin:
    """A `SOPS_DEPLOY_*` variable: the action's input when the action set it (and the
    option has an input), else the variable itself."""
    if (
        hints.interface(dict(environ)) == hints.ACTION
        and option.flag
        and name in option.env_names()
    ):
        given = hints.action_input(option.flag.removeprefix("--"))
        if given is not None:
            return Origin(Source.ACTION_INPUT, given)
    return Origin(Source.ENV, name)


def yaml_origin(option: Option, file: str, line: int | None) -> Origin:
    return Origin(Source.YAML, option.yaml or option.attr, file, line)


def reword(exc: UsageError, option: Option, text: str, origin: Origin) -> UsageError:
    """A check's refusal (written as `--flag 'text' ...`) in the words of `origin`."""
    if origin.source is Source.FLAG:
        return exc
    message, flag = exc.message, option.flag or option.attr
    for quoted in (True, False):
        said = f"{flag} {text!r}" if quoted else f"{flag} {text}"
        if message.startswith(said):
            message = origin.said(text, quoted=quoted) + message[len(said) :]
            break
    else:  # a refusal that does not show the value: nor does its rewording
        rest = message.removeprefix(flag) if message.startswith(f"{flag} ") else f": {message}"
        message = origin.named() + rest
    return UsageError(message, exc.hint, file=origin.file, line=origin.line)


def check_number(
    option: Option, value: float, origin: Origin | None = None, text: str | None = None
) -> None:
    """The table's range for a number, in the words of its source (`text`: as written
    there); nan and inf never pass (a nan compares false with every bound, and an inf
    timeout means no limit)."""
    where = origin or flag_origin(option)
    good = where.use(f"{option.default:g}") if option.default is not None else ""
    if not good and option.example:
        good = where.use(option.example)

    def refuse(why: str, shown: str) -> UsageError:
        said = where.said(text or shown)
        return UsageError(f"{said} {why}", good, file=where.file, line=where.line)

    if not math.isfinite(value):
        good = good or "use digits only"
        raise refuse("is not a finite number", str(value))
    if option.maximum is not None and value > option.maximum:
        raise refuse(f"must be at most {option.maximum:g}", f"{value:g}")
    if option.minimum is None:
        return
    if option.above and value <= option.minimum:
        raise refuse("must be positive", f"{value:g}")
    if value < option.minimum:
        if option.minimum == 0:
            raise refuse("must not be negative", f"{value:g}")
        raise refuse(f"must be at least {option.minimum:g}", f"{value:g}")
