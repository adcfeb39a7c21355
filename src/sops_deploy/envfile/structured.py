"""Sources that sops stores as yaml or json: a flat map of KEY: value, decrypted to JSON.

Owns the line of each key in the encrypted file, duplicate members (kept, so that lint
reports them), nested values (problems naming each leaf path) and typed scalars (numbers
kept in sops's own spelling, with a warning).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from sops_deploy.envfile.fragments import NAME_LIKE
from sops_deploy.envfile.source import Entry, _problem
from sops_deploy.errors import Problem


def key_lines(path: str) -> dict[str, int]:
    """Line of each top-level key in a sops yaml/json file (keys are stored in clear)."""
    import yaml  # here, not at the top: a dotenv source never loads YAML

    try:
        text = Path(path).read_text(encoding="utf-8")
        if text.lstrip().startswith("{"):
            # sops indents JSON with tabs, which YAML refuses; in valid JSON a tab can
            # only be whitespace between tokens, so spaces read the same.
            text = text.replace("\t", " ")
        node = yaml.compose(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {
        str(k.value): k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)
    }


class _Number(str):
    """A JSON number as sops wrote it (its text, not a float: nothing is rounded here)."""


class _Object(dict[str, object]):
    """A JSON object that remembers its members in order, duplicates included."""

    pairs: list[tuple[str, object]]


def _object(pairs: list[tuple[str, object]]) -> _Object:
    obj = _Object(pairs)
    obj.pairs = pairs
    return obj


def parse_json_map(
    text: str, source: str, lines: Mapping[str, int] | None = None
) -> tuple[list[Entry], list[Problem]]:
    """A flat map (decrypted sops yaml/json, as JSON) as entries; nested values are problems.

    Every member is an entry, a repeated key too (lint reports it as duplicate-key). A
    number is kept as the text sops printed, and warned about: sops parsed it as a number
    when the file was encrypted, so its original spelling may be gone.
    """
    lines = lines or {}
    try:
        doc = json.loads(text, object_pairs_hook=_object, parse_int=_Number, parse_float=_Number)
    except ValueError:
        doc = None
    if not isinstance(doc, _Object):
        return [], [
            _problem(
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
    for key, value in doc.pairs:
        line = lines.get(key)
        if isinstance(value, (dict, list)):
            paths = list(_leaf_paths(str(key), value))
            shown = ", ".join(paths[:3]) + (", …" if len(paths) > 3 else "")
            problems.append(
                _problem(
                    source,
                    line,
                    str(key),
                    "nested",
                    f"the value is nested ({shown or key}); environment variables are flat",
                    f"flatten it into top-level keys such as {key}_…, one KEY: value each",
                )
            )
            continue
        if isinstance(value, _Number):
            problems.append(_typed_number(source, line, str(key), value))
        entries.append(Entry(str(key), _scalar_text(value), source, line))
    return entries, problems


def _typed_number(source: str, line: int | None, key: str, value: str) -> Problem:
    kind = "an integer" if value.lstrip("-").isdigit() else "a floating-point number"
    return Problem(
        source,
        line,
        key if NAME_LIKE.match(key) else None,
        "typed-scalar",
        f"sops stored the value as {kind}, not text, and decrypts it in its own spelling "
        "(010 becomes 8, 0x1F 31, 1.10 1.1, 1E-7 1e-7; long integers are rounded)",
        'quote it in the YAML/JSON source (KEY: "010") and re-encrypt, if the spelling matters',
        "warning",
    )


def _leaf_paths(prefix: str, value: object) -> Iterable[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaf_paths(f"{prefix}.{k}", v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaf_paths(f"{prefix}[{i}]", v)
    else:
        yield prefix


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)
