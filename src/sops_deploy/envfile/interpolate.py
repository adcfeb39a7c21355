"""References to the file's own keys: `${NAME}` read as Compose reads it from a `.env`.

compose-go's dotenv reader expands `$NAME`, `${NAME}` and `${NAME:-default}` (and `-`,
`:?`, `?`, `:+`, `+`) in unquoted and double-quoted values, from the keys defined above
in the same file; single quotes keep every `$`; `$$` is one `$`. python-dotenv (its
default, `interpolate=True`) agrees on `${NAME}` and `${NAME:-default}`. The rule, by
`--interpolate`:

- `auto` (default): a value that references a key defined EARLIER in the same file is
  expanded exactly as compose-go expands it (`$$` in it becomes `$`); a reference to a
  name the file does not define above stays as written, with a warning naming the key
  (Compose would read it from its environment, or as empty). A value with no reference
  to the file's keys is kept as written, every `$` literal.
- `on`: every unquoted or double-quoted value is read as compose-go reads it; a
  reference to an undefined name without a default is an error (exit 4).
- `off`: every `$` literal (the file's text is the value).

Only values from a dotenv text are interpolated (`Entry.quote` is not None): a yaml/json
source has no such syntax. The expansion happens here, once, so every format writes the
expanded value for its own reader.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from sops_deploy.envfile.source import Entry
from sops_deploy.errors import Problem

MODES = ("auto", "on", "off")

# compose-go template.go: `\$(?i:(?P<escaped>\$)|(?P<named>[_a-z][_a-z0-9]*)|{(?:(?P<braced>
# [_a-z][_a-z0-9]*(?::?[-+?](.*))?)}|(?P<invalid>)))`. Go's (?i) folds k to the Kelvin sign
# and s to the long s (Python's re.IGNORECASE would also fold the Turkish i's), so spelled out.
_L = "_a-zA-Z\u017f\u212a"
_NAME = f"[{_L}][{_L}0-9]*"
PATTERN = re.compile(
    rf"\$(?:(?P<escaped>\$)|(?P<named>{_NAME})|\{{(?:(?P<braced>{_NAME}(?::?[-+?](.*))?)\}}"
    r"|(?P<invalid>)))"
)
_NAME_HEAD = re.compile(_NAME)
_SEPARATORS = (":?", "?", ":-", "-", ":+", "+")

Mapping = Callable[[str], "tuple[str, bool]"]


class TemplateError(Exception):
    """compose-go refuses the value (and with it the whole file)."""


@dataclass
class _Run:
    """One value's substitution: the mapping, and what it looked up."""

    values: dict[str, str]
    keep_unset: bool  # auto: a reference to an undefined name stays as written
    defined: set[str]
    undefined: list[str]

    def lookup(self, name: str, needed: bool = True) -> tuple[str, bool]:
        """The name's value above; an undefined one is recorded when `needed` (no default)."""
        if name in self.values:
            self.defined.add(name)
            return self.values[name], True
        if needed and name not in self.undefined:
            self.undefined.append(name)
        return "", False


def substitute(template: str, run: _Run) -> str:
    """compose-go `template.Substitute`: every match replaced; the first error raised."""
    errors: list[TemplateError] = []

    def one(match: re.Match[str]) -> str:
        try:
            return _replacement(match.group(0), run)
        except TemplateError as exc:
            errors.append(exc)
            return ""

    result = PATTERN.sub(one, template)
    if errors:
        raise errors[0]
    return result


def _replacement(substring: str, run: _Run) -> str:
    """compose-go `DefaultReplacementAppliedFunc` (with `keep_unset` for auto)."""
    sep = _separator(substring)
    closing = _first_closing_brace(substring)
    rest = ""
    if closing > -1:
        rest, substring = substring[closing + 1 :], substring[: closing + 1]
    match = PATTERN.match(substring)
    if match is None:
        raise TemplateError("invalid template")
    if match.group("escaped"):
        return "$"
    substitution, braced = match.group("named"), False
    if not substitution:
        substitution, braced = match.group("braced"), True
    if not substitution:
        raise TemplateError("invalid template")
    if run.keep_unset:
        head = _NAME_HEAD.match(substitution)
        name = head.group(0) if head else substitution
        if name not in run.values:
            run.lookup(name)
            return substring + (substitute(rest, run) if rest else "")
    if braced and sep is not None and sep in substitution:
        return _apply(substitution, sep, run) + substitute(rest, run)
    value, _ = run.lookup(substitution)
    return value


def _separator(template: str) -> str | None:
    """The separator compose-go picks: the one that appears first in the match."""
    found = [(template.find(s), s) for s in _SEPARATORS if s in template]
    return min(found)[1] if found else None


def _apply(substitution: str, sep: str, run: _Run) -> str:
    name, _, other = substitution.partition(sep)
    value, ok = run.lookup(name, needed=sep in (":?", "?"))
    if sep in (":-", "-"):
        if not ok or (sep == ":-" and value == ""):
            return substitute(other, run)
        return value
    if sep in (":+", "+"):
        if ok and (sep == "+" or value != ""):
            return substitute(other, run)
        return value
    if not ok or (sep == ":?" and value == ""):
        substitute(other, run)
        raise TemplateError("a required variable (${NAME:?...}) is missing a value")
    return value


def _first_closing_brace(s: str) -> int:
    depth, i = 0, 0
    while i < len(s):
        if s[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        if s[i] == "{":
            depth += 1
            i += 1
        i += 1
    return -1


def expand(entries: list[Entry], mode: str) -> tuple[list[Entry], list[Problem], list[str]]:
    """The entries of one dotenv file with references to its own keys expanded (`mode`).

    Returns the entries (an expanded one is a new Entry), the problems (warnings for names
    the file does not define above; errors for what compose-go refuses, and in `on` for an
    undefined name), and the keys whose values were expanded, in order.
    """
    if mode == "off":
        return entries, [], []
    values: dict[str, str] = {}
    out: list[Entry] = []
    problems: list[Problem] = []
    expanded: list[str] = []
    for e in entries:
        new = e
        if e.quote in ("", '"') and "$" in e.value:
            new, found = _expand_one(e, values, mode)
            problems += found
            if new.value != e.value:
                expanded.append(e.key)
        out.append(new)
        values[new.key] = new.value
    return out, problems, expanded


def _expand_one(e: Entry, values: dict[str, str], mode: str) -> tuple[Entry, list[Problem]]:
    probe = _Run(values, True, set(), [])
    try:
        result = substitute(e.value, probe)
    except TemplateError:
        result = e.value
    if mode == "auto" and not probe.defined:
        return e, [_undefined(e, probe.undefined, "warning")] if probe.undefined else []
    run = _Run(values, mode == "auto", set(), [])
    try:
        result = substitute(e.value, run)
    except TemplateError as exc:
        return e, [_refused(e, str(exc), "warning" if mode == "auto" else "error")]
    problems: list[Problem] = []
    if run.undefined:
        problems.append(_undefined(e, run.undefined, "warning" if mode == "auto" else "error"))
    if result == e.value:
        return e, problems
    return replace(e, value=result, template=e.value, refs=tuple(sorted(run.defined))), problems


def _undefined(e: Entry, names: list[str], severity: str) -> Problem:
    # The names are not shown: they are text of the value (`pa$ss` reads as `$ss`).
    count = f"{len(names)} names" if len(names) > 1 else "a name"
    if severity == "warning":
        return Problem(
            e.file,
            e.line,
            e.key,
            "undefined-reference",
            f"the value references {count} ($NAME or ${{NAME}}) that the file does not "
            "define above it: kept as written (Compose would read it from its environment, "
            "or as empty)",
            "define the key above this line, or write $$ for a literal $ (or use "
            "--interpolate off to keep every $ as written)",
            "warning",
        )
    return Problem(
        e.file,
        e.line,
        e.key,
        "undefined-reference",
        f"the value references {count} ($NAME or ${{NAME}}) that the file does not define above it",
        "define the key above this line, give a default (${NAME:-default}), or write $$ "
        "for a literal $",
    )


def _refused(e: Entry, why: str, severity: str) -> Problem:
    kept = ": kept as written" if severity == "warning" else ""
    return Problem(
        e.file,
        e.line,
        e.key,
        "interpolation",
        f"Compose cannot read this value ({why}), so it is not expanded{kept}",
        "write $$ for a literal $, close the ${...}, or use --interpolate off to keep every "
        "$ as written",
        severity,
    )
