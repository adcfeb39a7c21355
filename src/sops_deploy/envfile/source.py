"""Reading the decrypted plaintext: bytes checks and the strict dotenv grammar.

Source grammar: python-dotenv's `parse_stream` — quotes are stripped, double-quoted
escapes (`\\n`, `\\"`, `\\\\`, ...) apply, `export ` is accepted; each entry records how
its value was quoted, for `interpolate.py` (references to the file's own keys). Every
problem is a `Problem` naming file, line and key; a value never appears in one.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from sops_deploy.envfile.fragments import looks_like_value, take_fragments
from sops_deploy.errors import Problem

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BOM = b"\xef\xbb\xbf"
_KEY_HEAD = re.compile(r"^\s*(?:export\s+)?([^\s=#]+)\s*=")


@dataclass(frozen=True)
class Entry:
    """One secret: its key, its value, and where it came from."""

    key: str
    value: str
    file: str
    line: int | None
    # How the value was written in a dotenv text: "" unquoted, "'" or '"' quoted; None for
    # a value from a yaml/json map (never interpolated, see `interpolate.py`).
    quote: str | None = field(default=None, compare=False)
    # Set when `--interpolate` expanded the value: the text as written, the keys it used.
    template: str | None = field(default=None, compare=False)
    refs: tuple[str, ...] = field(default=(), compare=False)


Secrets = dict[str, Entry]


def _problem(
    source: str, line: int | None, key: str | None, rule: str, message: str, fix: str
) -> Problem:
    return Problem(source, line, key, rule, message, fix)


def _key_of_line(text: str) -> str | None:
    m = _KEY_HEAD.match(text)
    if not m or len(m.group(1)) >= 80:
        return None
    return None if looks_like_value(m.group(1)) else m.group(1)


def decode(plaintext: bytes, source: str) -> tuple[str, list[Problem]]:
    """Bytes-level checks (BOM, non-UTF-8, CRLF) on the plaintext, then its text.

    These run before parsing because a parser hides them: python-dotenv would read a BOM
    as part of the first key and a CR as part of a value. The text returned has the BOM
    removed, CRLF turned into LF and undecodable bytes replaced, so that parsing can go on
    and report every other problem in the same run (nothing is written while any error
    stands).
    """
    problems: list[Problem] = []
    data = plaintext
    if data.startswith(BOM):
        data = data[len(BOM) :]
        problems.append(
            _problem(
                source,
                1,
                _key_of_line(data.split(b"\n", 1)[0].decode("utf-8", "replace")),
                "bom",
                "the plaintext starts with a UTF-8 byte order mark (BOM)",
                "save the file as UTF-8 without BOM and re-encrypt it",
            )
        )
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(
                _problem(
                    source,
                    number,
                    _key_of_line(raw.decode("utf-8", "replace")),
                    "not-utf8",
                    "the line is not valid UTF-8 text",
                    "save the file as UTF-8 and re-encrypt it",
                )
            )
    crlf = [n for n, raw in enumerate(lines, start=1) if raw.endswith(b"\r")]
    if crlf:
        more = f" (and {len(crlf) - 1} more lines)" if len(crlf) > 1 else ""
        problems.append(
            _problem(
                source,
                crlf[0],
                _key_of_line(lines[crlf[0] - 1].decode("utf-8", "replace")),
                "crlf",
                f"the line ends with CRLF (Windows line ending){more}; parsers disagree "
                "on whether the CR belongs to the value",
                "convert the file to LF line endings (e.g. `dos2unix`) and re-encrypt it",
            )
        )
        data = data.replace(b"\r\n", b"\n")
    return data.decode("utf-8", "replace"), problems


def parse_dotenv(text: str, source: str) -> tuple[list[Entry], list[Problem]]:
    """Parse a dotenv plaintext strictly: every binding with its line, every bad line a
    Problem, and the last line of a value pasted without quotes a fragment (`fragments`)."""
    return take_fragments(*read_statements(text, source))


def read_statements(text: str, source: str) -> tuple[list[Entry], list[Problem]]:
    """Every statement of a dotenv text as python-dotenv reads it, with its line.

    The grammar is python-dotenv's `parse_stream` (see `parse_dotenv_reference`). The
    common statements (`KEY=value` without blanks, quotes, `#` or backslashes; a quoted
    value, even over several lines; a comment or blank line) are read here with regular
    expressions built from python-dotenv's own, in linear time; every other line goes
    through `parse_stream` itself. A test keeps the two equal on arbitrary text.
    """
    entries: list[Entry] = []
    problems: list[Problem] = []
    pos, line, end = 0, 1, len(text)
    while pos < end:
        simple = _SIMPLE.match(text, pos)
        if simple:
            entries.append(Entry(simple["key"], simple["value"], source, line, ""))
            pos, line = simple.end(), line + 1
            continue
        if text[pos] == "\n" or text.startswith("#", pos):
            skip = _SKIP.match(text, pos)
            if skip:
                pos, line = skip.end(), line + 1
                continue
        quoted = _QUOTED.match(text, pos)
        if quoted:
            from dotenv.parser import decode_escapes  # a quoted value: loaded once, here

            single = quoted["single"]
            value = (
                decode_escapes(_SINGLE_ESCAPES, single)
                if single is not None
                else decode_escapes(_DOUBLE_ESCAPES, quoted["double"])
            )
            entries.append(
                Entry(quoted["key"], value, source, line, "'" if single is not None else '"')
            )
            # python-dotenv counts a CR inside a quoted value as a line too
            pos, line = quoted.end(), line + len(_NEWLINES.findall(quoted.group(0)))
            continue
        cut = text.find("\n", pos)
        stop = end if cut == -1 else cut + 1
        chunk = text[pos:stop]
        if "'" in chunk or '"' in chunk or "\r" in chunk:
            # A quote may open a value that spans lines, and a CR ends a statement for
            # python-dotenv: from here on, the reference parser reads the rest.
            found, bad = parse_dotenv_reference(text[pos:], source, line - 1)
            return entries + found, problems + bad
        found, bad = parse_dotenv_reference(chunk, source, line - 1)
        entries += found
        problems += bad
        pos, line = stop, line + 1
    return entries, problems


# From python-dotenv's parser.py (1.2.x): the same character classes, so that a match here
# is exactly what parse_stream reads. `_WS` is its `_whitespace`.
_WS = r"[^\S\r\n]*"
_KEY = r"(?:export[^\S\r\n]+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)"
_SIMPLE = re.compile(_KEY + r"=(?P<value>[^\s'\"\\#]*)(?:\n|\Z)")
_SKIP = re.compile(r"(?:#[^\r\n]*)?(?:\n|\Z)")
_QUOTED = re.compile(
    _KEY
    + _WS
    + "="
    + _WS
    + r"""(?:'(?P<single>(?:\\.|[^'\\])*)'|"(?P<double>(?:\\.|[^"\\])*)")"""
    + _WS
    + r"(?:#[^\r\n]*)?(?:\n|\Z)",
    re.DOTALL,
)
_NEWLINES = re.compile(r"\r\n|\n|\r")
_SINGLE_ESCAPES = re.compile(r"\\[\\']")
_DOUBLE_ESCAPES = re.compile(r"\\[\\'\"abfnrtv]")


def parse_dotenv_reference(
    text: str, source: str, offset_line: int = 0
) -> tuple[list[Entry], list[Problem]]:
    """`parse_dotenv` through python-dotenv's `parse_stream` alone (lines from offset_line).

    After a syntax error the parse resumes on the next physical line, so that an
    unterminated quote does not swallow the lines after it unreported.
    """
    from dotenv.parser import parse_stream

    entries: list[Entry] = []
    problems: list[Problem] = []
    rest = text
    while rest:
        resume: str | None = None
        for binding in parse_stream(io.StringIO(rest)):
            original = binding.original.string
            leading = original[: len(original) - len(original.lstrip())]
            line = offset_line + binding.original.line + leading.count("\n")
            body = original.lstrip()
            if binding.error:
                problems.append(_syntax_problem(source, line, body))
                _, sep, after = body.partition("\n")
                if sep and after:
                    offset_line = line
                    resume = after
                    break
                continue
            if binding.key is None:
                continue  # comment or blank line
            if binding.value is None:
                # Not named by its text: the line may be a pasted value, not a key.
                problems.append(
                    _problem(
                        source,
                        line,
                        None,
                        "no-equals",
                        "the line has no `=`, so it is not KEY=value",
                        "write it as KEY=value (KEY= for an empty value), or delete the line",
                    )
                )
                continue
            problems += _trailing_space(source, line, binding.key, body)
            problems += _hash_after_blanks(source, line, binding.key, body)
            entries.append(Entry(binding.key, binding.value, source, line, _quote_of(body)))
        rest = resume or ""
    return entries, problems


def _quote_of(body: str) -> str:
    """The quote a statement's value opens with ("" unquoted), as python-dotenv reads it."""
    value = body.split("=", 1)[1].lstrip(" \t") if "=" in body else ""
    return value[0] if value[:1] in ("'", '"') else ""


def _syntax_problem(source: str, line: int, body: str) -> Problem:
    first = body.split("\n", 1)[0]
    key = _key_of_line(first)
    value = first.split("=", 1)[1].lstrip(" \t") if "=" in first else ""
    if value[:1] in ("'", '"'):
        quote = value[0]
        return _problem(
            source,
            line,
            key,
            "unterminated-quote",
            f"the value opens a {quote} quote that is never closed",
            f"close the quote at the end of the value, and write a {quote} inside it as \\{quote}",
        )
    return _problem(
        source,
        line,
        key,
        "syntax",
        "this line is not KEY=VALUE",
        'write it as KEY=value; quote values with spaces or # as KEY="a value"',
    )


_HASH_AFTER_BLANKS = re.compile(r"^[^=\n]*=[^\S\r\n]+#")


def _hash_after_blanks(source: str, line: int, key: str, body: str) -> list[Problem]:
    """`KEY=  # text`: python-dotenv reads an empty value, compose-go the `# text`."""
    if not _HASH_AFTER_BLANKS.match(body):
        return []
    return [
        Problem(
            source,
            line,
            key,
            "comment-or-value",
            "blanks then `#` after `=`: python-dotenv (and sops-deploy) read an empty value "
            "and a comment, Docker Compose reads the `#` text as the value",
            f"write {key}= with nothing after it for an empty value, or quote the text: "
            f'{key}="# ..."',
            "warning",
        )
    ]


def _trailing_space(source: str, line: int, key: str, body: str) -> list[Problem]:
    """An unquoted value followed by blanks: python-dotenv drops them, others may not."""
    first = body.split("\n", 1)[0]
    if "=" not in first:
        return []
    raw = first.split("=", 1)[1].lstrip(" \t").rstrip("\r")
    if not raw or raw[0] in ("'", '"', "#"):
        return []
    without_comment = re.sub(r"\s+#.*", "", raw)
    if without_comment == without_comment.rstrip():
        return []
    return [
        _problem(
            source,
            line,
            key,
            "trailing-whitespace",
            "the unquoted value ends with spaces or tabs, which are dropped",
            f'delete them, or quote the value if they matter: {key}="..."',
        )
    ]
