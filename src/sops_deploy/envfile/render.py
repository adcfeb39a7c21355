"""Writing the secrets for the reader that will load them, and proving it reads them back.

Each format has an encoder (`_quote`) and a model of its real parser (`MODELS`):
- `compose`: Docker Compose (compose-go `dotenv`): single quotes (verbatim) when the value
  has no `'`, backslash or line break; otherwise double quotes with `\\\\` `\\"` `\\n` `\\r`
  escapes and every `$` doubled to `$$` so that nothing is interpolated.
- `dotenv`: python-dotenv `dotenv_values` (interpolation on): double quotes with
  escapes; a value holding `${...}` is refused, python-dotenv has no way to escape it.
- `shell`, `docker`, `systemd`, `node`: see their modules (`shell.py`, `docker.py`, ...).
After rendering, the whole file is parsed again with the format's model and compared
key by key; a difference is a problem naming the key, never a silent change.
"""

from __future__ import annotations

import importlib
import io
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from sops_deploy.envfile.common import GO_SPACE as _GO_SPACE
from sops_deploy.envfile.common import RenderError, Unparseable
from sops_deploy.envfile.source import KEY_RE, Secrets
from sops_deploy.errors import Problem

if TYPE_CHECKING:
    from dotenv.parser import Binding

# python-dotenv's own `${NAME}` / `${NAME:-default}` pattern (dotenv/variables.py).
DOTENV_VARIABLE = re.compile(r"\$\{(?P<name>[^\}:]*)(?::-(?P<default>[^\}]*))?\}")


# --format raw writes the decrypted bytes; for a yaml/json store those would be sops's JSON.
RAW_STRUCTURED = (
    "--format raw writes the decrypted file as it is, and a sops yaml/json file decrypts "
    "to JSON, not to a .env",
    "use --format compose (or another dotenv format) for a yaml/json source; raw is for a "
    "sops dotenv or binary file",
)


def render(values: Mapping[str, str], fmt: str) -> bytes:
    """Render `values` as the file `fmt`'s reader parses back into exactly `values`."""
    return "".join(_line(key, value, fmt) for key, value in values.items()).encode("utf-8")


def _line(key: str, value: str, fmt: str) -> str:
    """One `KEY=value` line as `fmt` writes it (RenderError if it cannot)."""
    return f"{key}={_quote(key, value, fmt)}\n"


def render_problems(secrets: Secrets, fmt: str) -> list[Problem]:
    """Problems for values `fmt` cannot carry: refused by the encoder, or changed on re-parse."""
    return render_checked(secrets, fmt)[1]


def render_checked(secrets: Secrets, fmt: str) -> tuple[bytes, list[Problem]]:
    """The rendered file and the problems of `render_problems`, each value quoted once.

    The bytes are only meaningful when there are no problems. A key that is not a valid
    name is skipped here: lint reports it (invalid-key), and no reader could take it.
    """
    problems: list[Problem] = []
    lines: list[str] = []
    carried: list[str] = []
    for e in secrets.values():
        if not KEY_RE.match(e.key):
            continue
        try:
            lines.append(_line(e.key, e.value, fmt))
        except RenderError as exc:
            problems.append(_unrepresentable(e.file, e.line, e.key, fmt, str(exc)))
        else:
            carried.append(e.key)
    text = "".join(lines)
    if fmt not in MODELS or not lines:
        return text.encode("utf-8"), problems
    try:
        reread = MODELS[fmt](text)
    except Unparseable:
        reread = {}  # every carried key is then reported below, none silently lost
    for key in carried:
        e = secrets[key]
        if reread.get(key) != e.value:
            problems.append(
                _unrepresentable(e.file, e.line, key, fmt, "its reader would change it")
            )
    return text.encode("utf-8"), problems


def _unrepresentable(file: str, line: int | None, key: str, fmt: str, why: str) -> Problem:
    return Problem(
        file,
        line,
        key,
        "unrepresentable",
        f"the value cannot be written in the {fmt} format: {why}",
        "choose another --format (compose carries every value without NUL), or change the value",
    )


def _quote(key: str, value: str, fmt: str) -> str:
    if "\x00" in value:
        raise RenderError("it contains a NUL character")
    if fmt == "compose":
        if not _SINGLE_QUOTE_UNSAFE(value):
            return "'" + value + "'"  # compose-go single quotes: verbatim, no interpolation
        if _bare(value):
            return value
        return '"' + _escape(value).replace("$", "$$") + '"'
    if fmt == "dotenv":
        if DOTENV_VARIABLE.search(value):
            raise RenderError("it contains ${...}, which python-dotenv always interpolates")
        if _bare(value):
            return value
        return '"' + _escape(value) + '"'
    if fmt in _QUOTERS:
        return _QUOTERS[fmt](key, value)
    raise ValueError(f"no text rendering for format {fmt}")


def _bare(value: str) -> bool:
    """True for a value with a backslash that is safe unquoted, and so written bare.

    compose-go and python-dotenv (every version) keep an unquoted value's backslashes as
    they are, while python-dotenv before 1.2.3 (and Compose v1) misread a quoted value
    ending in a backslash and swallow the lines after it. Unquoted is safe when nothing
    else in the value is special to either reader: no blank at either end, no blank
    before a `#`, no quote first, no `$`, backquote or line break.
    """
    return (
        "\\" in value
        and value == value.strip()
        and value[0] not in "'\"#"
        and not any(c in value for c in "$`\n\r")
        and not _BLANK_HASH.search(value)
    )


_BLANK_HASH = re.compile(r"\s#")
# What compose-go's single quotes cannot carry (one regex: 10,000 values in 3 ms, where
# a generator over the four characters took 15 ms).
_SINGLE_QUOTE_UNSAFE = re.compile(r"['\\\n\r]").search


def _escape(value: str) -> str:
    """Double-quote escapes both compose-go and python-dotenv decode the same way."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")


# --- models of the real parsers --------------------------------------------------------


def parse_stream(stream: io.StringIO) -> Iterator[Binding]:
    """python-dotenv's own parser, loaded when a dotenv text is first read: importing the
    package loads logging, tempfile and subprocess too (14 ms a `validate` need not pay)."""
    from dotenv.parser import parse_stream as dotenv_parse

    return dotenv_parse(stream)


def dotenv_model(text: str) -> dict[str, str | None]:
    """python-dotenv `dotenv_values` as a service calls it (file read with universal newlines).

    A value that interpolation would change maps to None: its result depends on the
    environment of the process that reads it.
    """
    out: dict[str, str | None] = {}
    for binding in parse_stream(io.StringIO(text, newline=None)):
        if binding.key is None or binding.error:
            continue
        value = binding.value
        out[binding.key] = None if value is None or DOTENV_VARIABLE.search(value) else value
    return out


_LINE_SPACE = frozenset("\t\v\f\r \x85\xa0")  # compose-go isSpace: no line break
_COMPOSE_ESCAPE = re.compile(r"\\(?:[abcfnrtv$\"\\]|0\d{0,3})")
_COMPOSE_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<named>[_a-z][_a-z0-9]*)|\{(?:(?P<braced>[_a-z][_a-z0-9]*"
    r"(?::?[-+?](.*))?)\}|(?P<invalid>)))",
    re.IGNORECASE,
)
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


class _Interpolated(Exception):
    """compose-go would substitute a variable: the value depends on the reader's env."""


def compose_model(text: str) -> dict[str, str | None]:
    """compose-go v2 `dotenv` (env_file, project .env), ported statement by statement.

    Raises Unparseable where compose-go fails the whole file. Works on one string with an
    index (no slicing of the rest), so a large file is read in linear time.
    """
    out: dict[str, str | None] = {}
    src = text.removeprefix("\ufeff")
    end = len(src)
    pos = 0
    while True:
        pos = _statement_start(src, pos)
        if pos >= end:
            return out
        plain = _COMPOSE_PLAIN.match(src, pos)
        if plain:  # KEY='verbatim' (what `render` writes most): no escapes, no substitution
            out[plain[1]] = plain[2]
            pos = plain.end()
            continue
        export = _COMPOSE_EXPORT.match(src, pos)
        if export:
            pos = _skip(src, pos + len("export"), _LINE_SPACE)
        # The usual key characters in one step; then compose-go's loop, char by char.
        for i in range(_key_end(src, pos), end):
            ch = src[i]
            if ch in _LINE_SPACE:
                continue
            if ch in "=:\n":
                key, inherited = src[pos:i], ch == "\n"
                pos = i + 1
                break
            if ch in "_.-[]" or ch.isalpha() or unicodedata.category(ch).startswith("N"):
                continue
            raise Unparseable("unexpected character in variable name")
        else:
            raise Unparseable("a key without '='")
        key = key.rstrip("".join(_GO_SPACE))
        if " " in key:
            raise Unparseable("key cannot contain a space")
        if inherited:
            out[key] = None  # `KEY` alone: taken from the reader's environment, if set
            continue
        pos = _skip(src, pos, _LINE_SPACE)
        value, pos, substitute = _compose_value(src, pos)
        try:
            out[key] = _compose_substitute(value) if substitute else value
        except _Interpolated:
            out[key] = None


_COMPOSE_PLAIN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)='([^'\\]*)'")
_COMPOSE_KEY = re.compile(r"[A-Za-z0-9_.\[\]-]*")
_COMPOSE_EXPORT = re.compile(r"export[\t\n\f\r ]+")
_QUOTED = {q: re.compile(rf"((?:\\[\s\S]|[^\\{q}])*){q}") for q in ("'", '"')}


def _key_end(src: str, pos: int) -> int:
    match = _COMPOSE_KEY.match(src, pos)
    return pos if match is None else match.end()


def _skip(src: str, pos: int, chars: frozenset[str]) -> int:
    while pos < len(src) and src[pos] in chars:
        pos += 1
    return pos


def _statement_start(src: str, pos: int) -> int:
    """Past blanks and comment lines (compose-go `getStatementStart`)."""
    while True:
        pos = _skip(src, pos, _GO_SPACE)
        if not src.startswith("#", pos):
            return pos
        cut = src.find("\n", pos)
        if cut == -1:
            return len(src)
        pos = cut


def _compose_value(src: str, pos: int) -> tuple[str, int, bool]:
    """(value, position after it, subject to substitution): compose-go `extractVarValue`."""
    quote = src[pos : pos + 1]
    if quote not in ("'", '"'):
        cut = src.find("\n", pos)
        line = src[pos:] if cut == -1 else src[pos:cut]
        value = line.split(" #", 1)[0].rstrip("".join(_GO_SPACE))
        return value, len(src) if cut == -1 else cut + 1, True
    m = _QUOTED[quote].match(src, pos + 1)
    if m is None:
        raise Unparseable("unterminated quoted value")
    # A backslash keeps the character after it, and itself unless that is the quote.
    value = m.group(1).replace("\\" + quote, quote)
    if quote == "'":
        return value, m.end(), False  # single quotes: verbatim
    return _COMPOSE_ESCAPE.sub(_compose_unescape, value), m.end(), True


def _compose_unescape(match: re.Match[str]) -> str:
    seq = match.group(0)
    if seq == "\\$":
        return "$$"
    if seq.startswith("\\0"):
        digits = seq[2:]
        if len(digits) == 3 and all(d in "01234567" for d in digits) and int(digits, 8) < 0x80:
            return chr(int(digits, 8))
        return seq
    if seq[1] in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[seq[1]]
    if seq[1] in '"\\':
        return seq[1]
    return seq  # `\c`: Go's UnquoteChar refuses it and the text stays as it is


def _compose_substitute(value: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        raise _Interpolated

    return _COMPOSE_VARIABLE.sub(one, value)


def _on_use(module: str, name: str) -> Callable[..., Any]:
    """`envfile/<module>.py`'s `name`, imported at its first call: a run renders one
    format, and `validate` (compose by default) loads none of these four."""

    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(f"sops_deploy.envfile.{module}"), name)(*args)

    return call


_OTHERS = ("shell", "docker", "systemd", "node")
_QUOTERS: dict[str, Callable[[str, str], str]] = {f: _on_use(f, "quote") for f in _OTHERS}
MODELS: dict[str, Callable[[str], dict[str, str | None]]] = {
    "compose": compose_model,
    "dotenv": dotenv_model,
    **{f: _on_use(f, "model") for f in _OTHERS},
}


def read_values(data: bytes, fmt: str = "dotenv") -> dict[str, str | None] | None:
    """Key→value view of a file on a server as `fmt`'s reader sees it, for a key-level diff.

    None if the file is not text of that kind. For compose and shell this is the model of
    the reader (so `A=a$b` and `A='a$b'` differ under compose, as they do for Compose); a
    value the reader takes from its environment is None.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if fmt != "dotenv" and fmt in MODELS:
        try:
            return MODELS[fmt](text)
        except Unparseable:
            return None
    out: dict[str, str | None] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            return None
        if binding.key is not None:
            out[binding.key] = binding.value or ""
    return out
