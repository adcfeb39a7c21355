"""The text sops's dotenv store can hold for a value, read back exactly by the deploy path.

sops's dotenv store keeps one `KEY=text` per line and stores `text` as it is (quotes and
escapes included); the deploy path parses that text with the source grammar. So a value
with line breaks is stored double-quoted with `\\n` escapes (`KEY="line1\\nline2"`), which
the grammar reads back as the original line breaks. sops also refuses a line of only
whitespace. `init` and `rotate` write every value through `stored_text`, and both prove the
round trip through the real sops afterwards.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from sops_deploy import envfile


def stored_text(key: str, value: str) -> str | None:
    """The one-line text after `KEY=` that the source grammar reads back as `value`.

    The plain value when it reads back as itself, else single quotes, else double quotes
    with escapes (line breaks as `\\n`/`\\r`); None when no candidate reads back exactly.
    """
    double = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    candidates = [
        value,
        "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'",
        '"' + double + '"',
    ]
    for text in candidates:
        if "\n" in text or "\r" in text:
            continue
        entries, problems = envfile.parse_dotenv(f"{key}={text}\n", "<value>")
        if not problems and [(e.key, e.value) for e in entries] == [(key, value)]:
            return text
    return None


@dataclass(frozen=True)
class Stored:
    """A plaintext dotenv file as sops's dotenv store can take it, and what was changed."""

    text: str
    rewritten: tuple[tuple[int, str], ...]  # (line, key) of each value written on one line
    blanked: tuple[int, ...]  # lines of only whitespace, written empty
    unstorable: tuple[tuple[int, str], ...]  # (line, key) of multi-line values kept as they are


def for_sops(text: str) -> Stored:
    """`text` with each multi-line value on one line and whitespace-only lines emptied.

    Every other line (comments, `export`, inline comments) stays byte for byte. The caller
    has parsed `text` without problems; a value no candidate carries keeps its lines, and
    is listed in `unstorable` for the caller to refuse before sops echoes its lines.
    """
    from dotenv.parser import parse_stream

    entries = {e.line: (e.key, e.value) for e in envfile.parse_dotenv(text, "<plaintext>")[0]}
    out: list[str] = []
    rewritten: list[tuple[int, str]] = []
    blanked: list[int] = []
    unstorable: list[tuple[int, str]] = []
    for binding in parse_stream(io.StringIO(text)):
        # python-dotenv counts the whitespace before a binding into it: peel those lines.
        lines = binding.original.string.splitlines(keepends=True)
        line = binding.original.line
        while lines and lines[0].strip() == "" and (binding.key is None or len(lines) > 1):
            if lines[0].strip("\r\n"):
                blanked.append(line)
                out.append("\n")
            else:
                out.append(lines[0])
            lines, line = lines[1:], line + 1
        original = "".join(lines)
        body = original.rstrip("\r\n")
        entry = entries.get(line)
        if binding.key is not None and entry is not None and ("\n" in body or "\r" in body):
            key, value = entry
            single = stored_text(key, value)
            if single is not None:
                rewritten.append((line, key))
                out.append(f"{key}={single}\n")
                continue
            unstorable.append((line, key))
        out.append(original)
    return Stored("".join(out), tuple(rewritten), tuple(blanked), tuple(unstorable))
