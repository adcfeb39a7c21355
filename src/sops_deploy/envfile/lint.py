"""Rules on keys and values that hold for every source (dotenv, yaml, json), and merging.

`source.py` reads a plaintext into entries; the rules here look at the entries alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from sops_deploy.envfile.fragments import looks_like_value
from sops_deploy.envfile.source import KEY_RE, Entry, Secrets, _problem
from sops_deploy.errors import Problem


def lint(entries: Iterable[Entry]) -> list[Problem]:
    """Rules on keys and values that apply to every source (dotenv, yaml, json)."""
    problems: list[Problem] = []
    seen: dict[tuple[str, str], int | None] = {}
    for e in entries:
        # A key that may be a pasted value is named by its line only.
        shown = None if looks_like_value(e.key) else e.key
        if not KEY_RE.match(e.key):
            problems.append(
                _problem(
                    e.file,
                    e.line,
                    shown,
                    "invalid-key",
                    "a key must match [A-Za-z_][A-Za-z0-9_]*",
                    "rename it using letters, digits and underscores only",
                )
            )
        elif e.key.lower().startswith("sops_"):
            problems.append(
                _problem(
                    e.file,
                    e.line,
                    shown,
                    "sops-prefix",
                    "keys starting with sops_ collide with sops's own metadata",
                    "rename the key",
                )
            )
        elif e.key != e.key.upper():
            problems.append(
                Problem(
                    e.file,
                    e.line,
                    shown,
                    "lowercase-key",
                    "the key has lowercase letters; environment variables are upper case",
                    f"rename it to {e.key.upper()} (and update the code that reads it)"
                    if shown
                    else "rename it in upper case (and update the code that reads it)",
                    "warning",
                )
            )
        if e.value == "":
            problems.append(
                Problem(
                    e.file,
                    e.line,
                    shown,
                    "empty-value",
                    "the value is empty",
                    "give it a value, or mark it allow-empty in the schema",
                    "warning",
                )
            )
        first = seen.get((e.file, e.key), -1)
        if first != -1:
            where = f"line {first}" if first is not None else "above"
            problems.append(
                _problem(
                    e.file,
                    e.line,
                    shown,
                    "duplicate-key",
                    f"the key is already defined ({where})",
                    "keep one definition and delete the other",
                )
            )
        else:
            seen[(e.file, e.key)] = e.line
    return problems


def merge(layers: Iterable[list[Entry]]) -> Secrets:
    """Overlay entry lists in order: a later file's value (and line) replaces an earlier one's."""
    merged: Secrets = {}
    for layer in layers:
        for e in layer:
            merged[e.key] = e
    return merged
