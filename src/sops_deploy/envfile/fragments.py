"""Value fragments: the lines of a multi-line value pasted without quotes.

Such a line is refused (`value-fragment`) only in its context, and a key that may be a
pasted value is named in messages by its line only, never by its text.
"""

from __future__ import annotations

import re
from typing import Protocol, TypeVar

from sops_deploy.errors import Problem


class _Binding(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def file(self) -> str: ...
    @property
    def line(self) -> int | None: ...


E = TypeVar("E", bound=_Binding)

NAME_LIKE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def looks_like_value(key: str) -> bool:
    """Whether a key is shown by its line only in messages, never by its text: a name that
    is not name-like (`+`, `/`, blanks) or reads like base64 (long, no `_`, digits and many
    capitals, as in `MIIEvQIBADANBgkqhkiG9w0BAQEFAASC`). Display only: a key is refused for
    what it is (see `source.lint`, `take_fragments`), never for what it looks like."""
    if not NAME_LIKE.match(key):
        return True
    if len(key) < 16 or "_" in key or not any(c.isdigit() for c in key):
        return False
    if not any(c.islower() for c in key):
        return False
    return sum(c.isupper() for c in key) * 10 >= len(key) * 3


_BASE64_HEAD = re.compile(r"[A-Za-z0-9+/]+")
_PEM_BEGIN = "-----BEGIN "


def take_fragments(entries: list[E], problems: list[Problem]) -> tuple[list[E], list[Problem]]:
    """Take out the entries that are the last line of a pasted, unquoted multi-line value.

    A base64 block's last line (`...AQAB==`) reads as KEY=value (key `...AQAB`, value `=`),
    but only in its context is it a fragment: the line right after a line that is not
    KEY=value at all (a bare base64 or `-----END` line, already a `no-equals` error) or
    after an unquoted value that opens a PEM block (`KEY=-----BEGIN ...` with no END), and
    that consists of base64 text and its padding alone. Every other line the readers
    parse as KEY=value is one, whatever its key or value looks like (`K==v`, `Auth0Id`).
    """
    openers = {p.line for p in problems if p.rule == "no-equals" and p.line is not None}
    openers.update(
        e.line
        for e in entries
        if e.line is not None
        and e.value.startswith(_PEM_BEGIN)
        and "\n" not in e.value
        and "-----END" not in e.value
    )
    if not openers:
        return entries, problems
    kept: list[E] = []
    found: list[Problem] = []
    for e in entries:
        if (
            e.line is not None
            and e.line - 1 in openers
            and e.value in ("", "=")
            and _BASE64_HEAD.fullmatch(e.key)
        ):
            openers.add(e.line)
            found.append(
                Problem(
                    e.file,
                    e.line,
                    None,
                    "value-fragment",
                    "the line is the end of a multi-line value (base64 or PEM text) pasted "
                    "without quotes, not KEY=value",
                    'quote the whole multi-line value: KEY="first line\\nnext line" (or '
                    "with real line breaks inside the double quotes), then re-encrypt",
                )
            )
            continue
        kept.append(e)
    return kept, sorted(problems + found, key=lambda p: p.line or 0)
