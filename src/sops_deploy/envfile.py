"""The secrets themselves: strict parsing with line numbers, merging, lint, and rendering.

Source grammar (what a decrypted dotenv plaintext means): python-dotenv's grammar with
interpolation off — quotes are stripped, double-quoted escapes apply, `export ` is
accepted, and every `$` is literal. Every problem is returned as a `Problem` naming the
file, line and key; a value never appears in one.

Rendering writes the secrets for what the target will read them with (`compose`,
`dotenv`, `shell`, `raw`), and refuses a value the target format cannot carry.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dotenv.parser import parse_stream

from sops_deploy.errors import Problem

FORMATS = ("compose", "dotenv", "shell", "raw")
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Entry:
    """One secret: its key, its value, and where it came from."""

    key: str
    value: str
    file: str
    line: int | None


Secrets = dict[str, Entry]


def parse_dotenv(text: str, source: str) -> tuple[list[Entry], list[Problem]]:
    """Parse a dotenv plaintext strictly: every binding with its line, every bad line a Problem."""
    entries: list[Entry] = []
    problems: list[Problem] = []
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            problems.append(
                Problem(
                    source,
                    line,
                    _guess_key(binding.original.string),
                    "syntax",
                    "this line is not KEY=VALUE (or a quote is not closed)",
                    'write it as KEY=value; quote values with spaces or # as KEY="a value"',
                )
            )
            continue
        if binding.key is None:
            continue  # comment or blank line
        if binding.value is None:
            problems.append(
                Problem(
                    source,
                    line,
                    binding.key,
                    "no-equals",
                    "the key has no `=` and so no value",
                    f"write {binding.key}= (empty) or {binding.key}=value",
                )
            )
            continue
        entries.append(Entry(binding.key, binding.value, source, line))
    return entries, problems


def _guess_key(original: str) -> str | None:
    head = original.split("=", 1)[0].strip()
    head = head.removeprefix("export ").strip()
    return head if head and len(head) < 80 and "=" in original else None


def parse_json_map(text: str, source: str) -> tuple[list[Entry], list[Problem]]:
    """A flat JSON map (decrypted sops yaml/json) as entries; nested values are problems."""
    doc = json.loads(text)
    if not isinstance(doc, dict):
        return [], [
            Problem(
                source,
                None,
                None,
                "not-a-map",
                "the decrypted document is not a map of KEY: value",
                "store a flat map, one KEY: value per line",
            )
        ]
    entries: list[Entry] = []
    problems: list[Problem] = []
    for key, value in doc.items():
        if isinstance(value, (dict, list)):
            inner = next(iter(value), None) if isinstance(value, dict) else "0"
            path = f"{key}.{inner}" if inner is not None else key
            problems.append(
                Problem(
                    source,
                    None,
                    str(path),
                    "nested",
                    "nested values cannot become environment variables",
                    f"flatten it into a top-level key such as {key}_…",
                )
            )
            continue
        if isinstance(value, bool):
            text_value = "true" if value else "false"
        elif value is None:
            text_value = ""
        else:
            text_value = str(value)
        entries.append(Entry(str(key), text_value, source, None))
    return entries, problems


def lint(entries: Iterable[Entry]) -> list[Problem]:
    """Rules that apply to every source: key names and duplicates within one file."""
    problems: list[Problem] = []
    seen: dict[tuple[str, str], int | None] = {}
    for e in entries:
        if not KEY_RE.match(e.key):
            problems.append(
                Problem(
                    e.file,
                    e.line,
                    e.key,
                    "invalid-key",
                    "a key must match [A-Za-z_][A-Za-z0-9_]*",
                    "rename it using letters, digits and underscores only",
                )
            )
        elif e.key.lower().startswith("sops_"):
            problems.append(
                Problem(
                    e.file,
                    e.line,
                    e.key,
                    "sops-prefix",
                    "keys starting with sops_ collide with sops's own metadata",
                    "rename the key",
                )
            )
        first = seen.get((e.file, e.key), -1)
        if first != -1:
            where = f"line {first}" if first is not None else "above"
            problems.append(
                Problem(
                    e.file,
                    e.line,
                    e.key,
                    "duplicate-key",
                    f"the key is already defined ({where})",
                    "keep one definition and delete the other",
                )
            )
        else:
            seen[(e.file, e.key)] = e.line
    return problems


def merge(layers: Iterable[list[Entry]]) -> Secrets:
    """Overlay entry lists in order: a later file's key replaces an earlier one's."""
    merged: Secrets = {}
    for layer in layers:
        for e in layer:
            merged[e.key] = e
    return merged


class RenderError(Exception):
    """A value the chosen format cannot carry (raised as a Problem by the caller)."""


def render(values: Mapping[str, str], fmt: str) -> bytes:
    """Render `values` as the file `fmt`'s reader parses back into exactly `values`."""
    lines = [f"{key}={_quote(key, value, fmt)}\n" for key, value in values.items()]
    return "".join(lines).encode("utf-8")


def render_problems(secrets: Secrets, fmt: str) -> list[Problem]:
    """Problems for values that `fmt` cannot carry, each naming the key, never the value."""
    problems = []
    for e in secrets.values():
        try:
            _quote(e.key, e.value, fmt)
        except RenderError as exc:
            problems.append(
                Problem(
                    e.file,
                    e.line,
                    e.key,
                    "unrepresentable",
                    f"the value cannot be written in the {fmt} format: {exc}",
                    "choose another --format, or change the value",
                )
            )
    return problems


def _quote(key: str, value: str, fmt: str) -> str:
    if "\x00" in value:
        raise RenderError("it contains a NUL byte")
    if fmt == "shell":
        return "'" + value.replace("'", "'\\''") + "'"
    if fmt == "dotenv":
        # python-dotenv single quotes: no interpolation; only \\ and \' are escapes.
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if fmt == "compose":
        # compose-go single quotes: taken verbatim, no interpolation, no escapes; a
        # backslash still escapes the closing quote while scanning.
        if "'" in value:
            raise RenderError("it contains a single quote")
        trailing = len(value) - len(value.rstrip("\\"))
        if trailing % 2:
            raise RenderError("it ends with a backslash")
        return "'" + value + "'"
    raise ValueError(f"unknown format {fmt}")


def read_values(data: bytes) -> dict[str, str] | None:
    """Key→value view of a file on a server, for a key-level diff; None if not dotenv."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    out: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            return None
        if binding.key is not None:
            out[binding.key] = binding.value or ""
    return out
