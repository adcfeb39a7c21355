"""What the secrets must contain: `--required` keys, a `schema.yaml`, or a `.env.example`.

A schema file that is itself wrong is a `UsageError` naming its line (exit 2). Checking
the secrets returns every problem at once, each naming the key and never the value.

schema.yaml:

    allow-other-keys: true          # default true
    keys:
      DATABASE_URL: {type: url}     # required (default true), non-empty
      PORT: {type: port, required: false}
      LOG_LEVEL: {type: enum, choices: [debug, info, warning]}
      API_TOKEN: {pattern: "tok_[a-z]+_[0-9a-f]+", min-length: 16}
      FEATURE_FLAGS: {allow-empty: true}
      PUBLIC_URL: {type: url, secret: false}   # public: a GitHub variable, not a secret

A `.env.example` (any schema file not ending in .yaml/.yml/.json): every key it lists is
required and non-empty, unless a comment on its line or the comment line just above says
`optional` (then it may be missing or empty); a comment there that says `public` marks the
key public, like `secret: false` (docs/action-and-masking.md, "Masking").
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from sops_deploy.envfile import KEY_RE, Secrets
from sops_deploy.errors import Problem, UsageError

if TYPE_CHECKING:
    import yaml  # imported where a schema.yaml is read: a deploy without one never loads it

TYPES = ("string", "int", "float", "bool", "url", "email", "port", "enum")
OPTIONS = ("required", "type", "choices", "pattern", "min-length", "allow-empty", "secret")
_BOOLS = ("true", "false", "1", "0", "yes", "no", "on", "off")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_OPTIONAL = re.compile(r"\boptional\b", re.IGNORECASE)
_PUBLIC = re.compile(r"\bpublic\b", re.IGNORECASE)


@dataclass(frozen=True)
class KeyRule:
    """What one key must be, and the schema line that says so."""

    key: str
    line: int | None = None
    required: bool = True
    type: str = "string"
    choices: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    min_length: int | None = None
    allow_empty: bool = False
    secret: bool = True  # `secret: false`: a public value (a GitHub variable, never masked)


@dataclass(frozen=True)
class Schema:
    path: str
    rules: dict[str, KeyRule] = field(default_factory=dict)
    allow_other_keys: bool = True

    def public_keys(self) -> dict[str, str]:
        """Keys this schema marks public, each with where it says so (`path:line`)."""
        return {
            key: f"{self.path}:{rule.line}" if rule.line else self.path
            for key, rule in self.rules.items()
            if not rule.secret
        }


class _Wants(Protocol):
    @property
    def required(self) -> tuple[str, ...]: ...

    @property
    def files(self) -> tuple[str, ...]: ...

    @property
    def schema(self) -> str | None: ...

    @property
    def allow_empty(self) -> bool: ...


def load(path: str) -> Schema:
    """Read a schema file (yaml/json, or a .env.example); UsageError naming the line if wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"{path}: cannot read the schema ({exc.__class__.__name__})",
            "pass an existing UTF-8 file with --schema",
            file=path,
        ) from None
    if path.endswith((".yaml", ".yml", ".json")):
        return _load_yaml(path, text)
    return _load_example(path, text)


def _bad(path: str, line: int | None, what: str, fix: str) -> UsageError:
    where = f"{path}:{line}" if line else path
    return UsageError(f"{where}: invalid schema: {what}", fix, file=path, line=line)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _load_yaml(path: str, text: str) -> Schema:
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise _bad(path, line, "not valid YAML", "fix the YAML syntax at that line") from None
    if root is None:
        return Schema(path)
    if not isinstance(root, yaml.MappingNode):
        raise _bad(path, _line(root), "the top level must be a map", "start with `keys:`")
    schema_fix = "the top level takes `keys:` and `allow-other-keys:`"
    allow_other = True
    rules: dict[str, KeyRule] = {}
    for k, v in root.value:
        name = _scalar(path, k)
        if name == "allow-other-keys":
            allow_other = _bool(path, v, name)
        elif name == "keys":
            if isinstance(v, yaml.ScalarNode) and v.value in ("", "~", "null"):
                continue
            if not isinstance(v, yaml.MappingNode):
                raise _bad(path, _line(v), "`keys` must be a map of KEY: {options}", schema_fix)
            for kk, vv in v.value:
                rule = _rule(path, kk, vv)
                if rule.key in rules:
                    raise _bad(path, _line(kk), f"{rule.key} is listed twice", "keep one entry")
                rules[rule.key] = rule
        else:
            raise _bad(path, _line(k), f"unknown setting {name!r}", schema_fix)
    return Schema(path, rules, allow_other)


def _scalar(path: str, node: yaml.Node) -> str:
    import yaml

    if not isinstance(node, yaml.ScalarNode):
        raise _bad(path, _line(node), "expected a plain value here", "write a single value")
    return str(node.value)


def _bool(path: str, node: yaml.Node, name: str) -> bool:
    value = _scalar(path, node).lower()
    if value not in ("true", "false"):
        raise _bad(path, _line(node), f"`{name}` must be true or false", f"write {name}: true")
    return value == "true"


def _rule(path: str, key_node: yaml.Node, node: yaml.Node) -> KeyRule:
    import yaml

    key = _scalar(path, key_node)
    line = _line(key_node)
    if not KEY_RE.match(key):
        raise _bad(path, line, f"{key!r} is not a valid key name", "use [A-Za-z_][A-Za-z0-9_]*")
    if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
        return KeyRule(key, line)
    opts: dict[str, yaml.Node] = {}
    if isinstance(node, yaml.ScalarNode):
        opts["type"] = node  # shorthand: `PORT: port`
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            name = _scalar(path, k)
            if name not in OPTIONS:
                raise _bad(
                    path, _line(k), f"{key}: unknown option {name!r}", f"use {', '.join(OPTIONS)}"
                )
            opts[name] = v
    else:
        raise _bad(path, line, f"{key}: expected a map of options", f"write {key}: {{type: url}}")
    kind = _scalar(path, opts["type"]) if "type" in opts else "string"
    if kind not in TYPES:
        raise _bad(
            path, _line(opts["type"]), f"{key}: unknown type {kind!r}", f"use {', '.join(TYPES)}"
        )
    choices: tuple[str, ...] = ()
    if "choices" in opts:
        node_c = opts["choices"]
        if not isinstance(node_c, yaml.SequenceNode) or not node_c.value:
            raise _bad(path, _line(node_c), f"{key}: choices must be a list", "choices: [a, b]")
        choices = tuple(_scalar(path, c) for c in node_c.value)
    if kind == "enum" and not choices:
        raise _bad(path, line, f"{key}: type enum needs choices", "add choices: [a, b]")
    pattern = None
    if "pattern" in opts:
        try:
            pattern = re.compile(_scalar(path, opts["pattern"]))
        except re.error as exc:
            raise _bad(
                path,
                _line(opts["pattern"]),
                f"{key}: pattern is not a valid regular expression ({exc.msg})",
                "fix the pattern (Python `re` syntax; it must match the whole value)",
            ) from None
    min_length = None
    if "min-length" in opts:
        text = _scalar(path, opts["min-length"])
        if not text.isdigit():
            raise _bad(path, _line(opts["min-length"]), f"{key}: min-length must be a number", "")
        min_length = int(text)
    return KeyRule(
        key,
        line,
        required=_bool(path, opts["required"], "required") if "required" in opts else True,
        type=kind,
        choices=choices,
        pattern=pattern,
        min_length=min_length,
        allow_empty=(
            _bool(path, opts["allow-empty"], "allow-empty") if "allow-empty" in opts else False
        ),
        secret=_bool(path, opts["secret"], "secret") if "secret" in opts else True,
    )


def _load_example(path: str, text: str) -> Schema:
    from dotenv.parser import parse_stream  # a deploy without .env.example never loads it

    rules: dict[str, KeyRule] = {}
    optional_next = public_next = False
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original.string
        leading = original[: len(original) - len(original.lstrip())]
        line = binding.original.line + leading.count("\n")
        if binding.error:
            raise _bad(path, line, "this line is not KEY=value", "write it as KEY= # comment")
        if binding.key is None:
            comment = original.strip().splitlines()[-1] if original.strip() else ""
            optional_next = comment.startswith("#") and bool(_OPTIONAL.search(comment))
            public_next = comment.startswith("#") and bool(_PUBLIC.search(comment))
            continue
        if not KEY_RE.match(binding.key):
            raise _bad(path, line, f"{binding.key!r} is not a valid key name", "rename it")
        inline = original.split("#", 1)[1] if "#" in original else ""
        optional = optional_next or bool(_OPTIONAL.search(inline))
        public = public_next or bool(_PUBLIC.search(inline))
        rules[binding.key] = KeyRule(
            binding.key, line, required=not optional, allow_empty=optional, secret=not public
        )
        optional_next = public_next = False
    return Schema(path, rules, allow_other_keys=True)


def check(secrets: Secrets, wants: _Wants) -> list[Problem]:
    """Problems for required keys and schema rules, all of them, never naming a value."""
    problems: list[Problem] = []
    where = ", ".join(wants.files)
    if not secrets and not wants.allow_empty:
        problems.append(
            Problem(
                where,
                None,
                None,
                "empty-source",
                "the source holds no key at all: deploying it would empty the file on the server",
                "add the keys with `sops edit`, or pass --allow-empty if an empty file is meant",
            )
        )
    for key in wants.required:
        entry = secrets.get(key)
        if entry is None:
            problems.append(_missing(where, key, "add it with `sops edit` (e.g. {key}=...)"))
        elif entry.value == "":
            problems.append(
                Problem(
                    entry.file,
                    entry.line,
                    key,
                    "required-empty",
                    "a required key is empty",
                    "give it a value with `sops edit` and commit",
                )
            )
    if wants.schema:
        problems += check_schema(secrets, load(wants.schema), where, set(wants.required))
    return problems


def _missing(where: str, key: str, fix: str) -> Problem:
    return Problem(
        where, None, key, "required-missing", "a required key is missing", fix.format(key=key)
    )


def check_schema(secrets: Secrets, schema: Schema, where: str, done: set[str]) -> list[Problem]:
    """Problems against one schema; `done` keys were already checked as --required."""
    problems: list[Problem] = []
    for key, rule in schema.rules.items():
        entry = secrets.get(key)
        at = f" (schema {schema.path}:{rule.line})" if rule.line else ""
        if entry is None:
            if rule.required and key not in done:
                problems.append(_missing(where, key, f"add it with `sops edit`{at}"))
            continue
        if entry.value == "":
            if not rule.allow_empty and key not in done:
                problems.append(
                    Problem(
                        entry.file,
                        entry.line,
                        key,
                        "empty-not-allowed",
                        "the value is empty and the schema does not allow that",
                        f"give it a value, or set allow-empty: true{at}",
                    )
                )
            continue
        for rule_name, message in _value_checks(rule, entry.value):
            problems.append(
                Problem(entry.file, entry.line, key, rule_name, message, f"fix the value{at}")
            )
    if not schema.allow_other_keys:
        for key, entry in secrets.items():
            if key not in schema.rules:
                problems.append(
                    Problem(
                        entry.file,
                        entry.line,
                        key,
                        "unexpected-key",
                        f"the key is not in the schema {schema.path} (allow-other-keys: false)",
                        "delete the key, or add it to the schema",
                    )
                )
    return problems


def _value_checks(rule: KeyRule, value: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    check_type = _TYPE_CHECKS.get(rule.type)
    if check_type is not None and not check_type(value):
        found.append(("type", f"the value is not a valid {rule.type}"))
    if rule.type == "enum" and value not in rule.choices:
        found.append(("type", f"the value is not one of: {', '.join(rule.choices)}"))
    if rule.pattern is not None and not rule.pattern.fullmatch(value):
        found.append(("pattern", f"the value does not match the pattern {rule.pattern.pattern}"))
    if rule.min_length is not None and len(value) < rule.min_length:
        found.append(("min-length", f"the value is shorter than {rule.min_length} characters"))
    return found


def _is_int(value: str) -> bool:
    return re.fullmatch(r"[+-]?[0-9]+", value) is not None


def _is_float(value: str) -> bool:
    try:
        return math.isfinite(float(value)) and value.strip() == value
    except ValueError:
        return False


def _is_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.scheme and parts.netloc) and not any(c.isspace() for c in value)


_TYPE_CHECKS: dict[str, Callable[[str], bool]] = {
    "int": _is_int,
    "float": _is_float,
    "bool": lambda v: v.lower() in _BOOLS,
    "url": _is_url,
    "email": lambda v: _EMAIL.fullmatch(v) is not None,
    "port": lambda v: re.fullmatch(r"[0-9]{1,5}", v) is not None and 1 <= int(v) <= 65535,
}


def drop_covered_warnings(problems: list[Problem]) -> list[Problem]:
    """Drop an `empty-value` warning when an error already says the same key is empty."""
    empty_errors = {
        (p.file, p.key)
        for p in problems
        if p.severity == "error" and p.rule in ("required-empty", "empty-not-allowed")
    }
    return [
        p for p in problems if not (p.rule == "empty-value" and (p.file, p.key) in empty_errors)
    ]
