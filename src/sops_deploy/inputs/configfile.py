"""`sops-deploy.yaml`: named environments (files, hosts, remote path, ...) loaded and validated.

The file is read with PyYAML's node API (`yaml.compose`), so every error names the file and
the line: unknown keys, wrong types, duplicate keys, missing fields and bad values (a host
that is not `[user@]host[:port]`, a mode that would make the secrets world-readable).

The keys an environment may set, their kinds and checks are the rows of `table.OPTIONS`
that name a YAML key; a loaded environment maps option attribute → typed value and the
line that set it (`layer`), which `precedence.resolve` places under the flags and variables.
Relative paths in the file are relative to the file's own directory.

    defaults:                      # optional: shared by every environment
      known-hosts: known_hosts
    environments:
      production:
        files: [common.env.encrypted, production.env.encrypted]   # later overrides earlier
        hosts: [deploy@web1.example.com, deploy@web2.example.com:2222]
        remote-path: /srv/app/.env   # or `targets:` (docs/fleets.md)
        github: {repo: octo-org/app, keys: [DATABASE_URL, "APP_*"], prune: true}  # github-sync
        sync: {vault: [{path: secret/apps/web}]}   # vault-sync / aws-sync --env …
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from sops_deploy.defaults import DEFAULT_CONFIG
from sops_deploy.errors import UsageError
from sops_deploy.inputs.settings import TargetEntry
from sops_deploy.inputs.sources import Origin, Source, check_number, reword
from sops_deploy.inputs.table import (
    GITHUB_FIELDS,
    REQUIRED_YAML,
    TARGET_FIELDS,
    YAML_FIELDS,
    Option,
)
from sops_deploy.inputs.yamlkinds import BOOL, EXAMPLE, FLOAT, INT, STR, WANT, type_name, typed
from sops_deploy.stores import syncconfig

GITHUB_SECTION = "<github>"  # marks an environment that has a `github:` section


def _local_path(name: str, text: str) -> bool:
    """A path field's text names a file here: not known_hosts lines, not a store URL."""
    lines = name == "known-hosts" and ("\n" in text.strip() or " " in text.strip())
    return "://" not in text and not lines


@dataclass(frozen=True)
class Environment:
    """One named environment, validated: option attribute → typed value."""

    name: str
    config: str
    values: dict[str, Any]
    lines: dict[str, int] = dataclasses.field(
        default_factory=dict
    )  # attribute → the line that set it


@dataclass(frozen=True)
class ConfigFile:
    path: str
    defaults: dict[str, Any]
    environments: dict[str, Environment]
    default_lines: dict[str, int] = dataclasses.field(default_factory=dict)

    def environment(self, name: str) -> Environment:
        if name not in self.environments:
            known = ", ".join(self.environments) or "(none)"
            raise UsageError(
                f"{self.path}: no environment {name!r} (environments: {known})",
                f"pass --env with one of: {known}, or add `{name}:` under `environments:`",
                file=self.path,
            )
        return self.environments[name]


def _error(path: str, node: Node, message: str, hint: str) -> UsageError:
    line = node.start_mark.line + 1
    return UsageError(f"{path}:{line}: {message}", hint, file=path, line=line)


def _mapping(path: str, node: Node, where: str) -> list[tuple[str, Node, Node]]:
    """The (key, key node, value node) pairs of a mapping; duplicate keys are an error."""
    if not isinstance(node, MappingNode):
        raise _error(
            path, node, f"{where} must be a mapping, not {type_name(node)}", "write `key: value`"
        )
    seen: dict[str, int] = {}
    pairs: list[tuple[str, Node, Node]] = []
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            raise _error(path, key_node, f"{where}: keys must be plain names", "write `name:`")
        key = str(key_node.value)
        if key in seen:
            raise _error(
                path,
                key_node,
                f"{where}: `{key}` appears twice (first on line {seen[key]})",
                "keep one of them",
            )
        seen[key] = key_node.start_mark.line + 1
        pairs.append((key, key_node, value_node))
    return pairs


def _scalar(path: str, name: str, node: Node, field: Option) -> str:
    """Check one scalar against the field's kind; returns its text."""
    if not isinstance(node, ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        raise _error(
            path,
            node,
            f"`{name}` must be {WANT[field.kind]}, not {type_name(node)}",
            f"write `{name}: {EXAMPLE[field.kind]}`",
        )
    text = str(node.value)
    if field.kind == "mode":  # the literal text: YAML 1.1 would read 0600 as the number 384
        return text
    if field.kind == "str":
        if node.tag != STR:
            raise _error(
                path,
                node,
                f"`{name}` must be {WANT['str']}, not {type_name(node)}",
                f'quote it: `{name}: "{text}"`',
            )
        return text
    if field.kind == "bool":
        if node.tag != BOOL:
            raise _error(
                path, node, f"`{name}` must be true or false, not {text!r}", f"write `{name}: true`"
            )
        return "true" if text.lower() in ("true", "yes", "on", "y") else "false"
    tags = (INT,) if field.kind == "int" else (INT, FLOAT)
    if node.tag not in tags:
        raise _error(
            path,
            node,
            f"`{name}` must be {WANT[field.kind]}, not {type_name(node)}",
            f"write `{name}: {field.example or EXAMPLE[field.kind]}`",
        )
    try:
        value = float(text)
    except ValueError:  # YAML's .nan / .inf
        value = math.nan
    check_number(field, value, Origin(Source.YAML, name, path, node.start_mark.line + 1), text)
    return text


def _value(path: str, name: str, node: Node, field: Option, base: Path) -> Any:
    """Validate one field's node; its value of the field's kind (checked and converted)."""
    if field.kind == "list":
        items = node.value if isinstance(node, SequenceNode) else [node]
        if isinstance(node, SequenceNode) and not items:
            raise _error(
                path, node, f"`{name}` is an empty list", f"list at least one, or drop `{name}`"
            )
        texts = [_scalar(path, name, item, Option(field.attr, None)) for item in items]
        nodes = list(items)
    else:
        texts = [_scalar(path, name, node, field)]
        nodes = [node]
    out = []
    for text, item in zip(texts, nodes, strict=True):
        value = typed(field, text)
        if field.path and _local_path(name, text):
            value = text if os.path.isabs(text) else os.path.normpath(base / text)
        if field.check is not None:
            try:
                value = field.check(value)
            except UsageError as exc:
                origin = Origin(Source.YAML, name, path, item.start_mark.line + 1)
                raise reword(exc, field, text, origin) from None
        out.append(value)
    return tuple(out) if field.kind == "list" else out[0]


def _section(
    path: str,
    node: Node,
    where: str,
    base: Path,
    fields: dict[str, Option] = YAML_FIELDS,
    lines: dict[str, int] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    lines = {} if lines is None else lines
    top = fields is YAML_FIELDS
    for key, key_node, value_node in _mapping(path, node, where):
        if key == "github" and top:
            out.update(_section(path, value_node, f"{where}: github", base, GITHUB_FIELDS, lines))
            out[GITHUB_SECTION] = True
            continue
        field = fields.get(key)
        if field is not None and field.kind in ("targets", "sync"):
            read = _targets if field.kind == "targets" else syncconfig.parse
            out[field.attr] = read(path, value_node, f"{where}: {key}", base)
            continue
        if field is None:
            raise _error(
                path,
                key_node,
                f"{where}: unknown key `{key}`",
                "known keys: " + ", ".join([*fields, *(["github"] if top else [])]),
            )
        out[field.attr] = _value(path, key, value_node, field, base)
        lines[field.attr] = key_node.start_mark.line + 1
    return out


def _targets(path: str, node: Node, where: str, base: Path) -> tuple[TargetEntry, ...]:
    """`targets:`: a list of mappings of `TARGET_FIELDS`, each with a remote-path of its
    own; a target's unset fields come from its environment (see `options.settings`)."""
    if not isinstance(node, SequenceNode) or not node.value:
        raise _error(
            path,
            node,
            f"{where} must be a non-empty list, not {type_name(node)}",
            "write one `- remote-path: ...` entry per output on the host",
        )
    entries: list[TargetEntry] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(node.value, 1):
        line = item.start_mark.line + 1
        values = _section(path, item, f"{where}[{i}]", base, TARGET_FIELDS)
        remote = values.get("remote_path")
        if remote is None:
            raise _error(
                path, item, f"{where}[{i}] has no `remote-path`", "add `remote-path: /srv/app/.env`"
            )
        if remote in seen:
            raise _error(
                path,
                item,
                f"{where}[{i}]: {remote} is also the target on line {seen[remote]}",
                "give each target its own remote-path",
            )
        seen[remote] = line
        if values.get("format") == "files" and "backup" in values:
            raise _error(
                path,
                item,
                f"{where}[{i}]: a files target keeps no backups (they would sit among the "
                "secrets, read as secrets)",
                "drop `backup:` from this target; a failed post-command still restores the "
                "previous files",
            )
        entries.append(TargetEntry(values, line))
    return tuple(entries)


def _outputs_of(
    path: str, name: str, node: Node, own: dict[str, Any], values: dict[str, Any]
) -> None:
    """An environment has `targets:` or one `remote-path` (its own wins over `defaults:`)."""
    if "targets" in own and "remote_path" in own:
        raise _error(
            path,
            node,
            f"environment `{name}` has both `remote-path` and `targets:`",
            "move remote-path (and format) into one entry of `targets:`, or drop `targets:`",
        )
    if "targets" in own:
        values.pop("remote_path", None)
    elif "remote_path" in own:
        values.pop("targets", None)
    if "targets" in values and "post_command" in values:
        raise _error(
            path,
            node,
            f"environment `{name}` lists `targets:`; its `post-command` would run once per target",
            "move `post-command:` into the target whose change it follows",
        )


def load(path: str) -> ConfigFile:
    """Read and validate a sops-deploy.yaml; every problem is a UsageError with file:line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fix = f"pass the path of your sops-deploy.yaml (default {DEFAULT_CONFIG})"
        raise UsageError(f"--config {path}: {exc.strerror}", fix, file=path) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        where = f"{path}:{line}" if line else path
        raise UsageError(
            f"{where}: not valid YAML: {exc.problem or exc.context}",
            "fix the YAML syntax (indentation, quotes, colons)",
            file=path,
            line=line,
        ) from None
    if root is None:
        raise UsageError(
            f"{path}:1: the file is empty", "add an `environments:` mapping", file=path, line=1
        )
    base = Path(os.path.dirname(path))
    defaults: dict[str, Any] = {}
    default_lines: dict[str, int] = {}
    env_node: Node | None = None
    for key, key_node, value_node in _mapping(path, root, "the file"):
        if key == "version":
            if not (isinstance(value_node, ScalarNode) and value_node.value == "1"):
                raise _error(path, value_node, "`version` must be 1", "write `version: 1`")
        elif key == "defaults":
            defaults = _section(path, value_node, "defaults", base, lines=default_lines)
        elif key == "environments":
            env_node = value_node
        else:
            raise _error(
                path,
                key_node,
                f"unknown top-level key `{key}`",
                "the file has `environments:` (and optionally `defaults:`, `version: 1`); "
                "put settings inside an environment",
            )
    if env_node is None:
        raise _error(
            path,
            root,
            "no `environments:` mapping",
            "add `environments:` with one entry per target",
        )
    environments: dict[str, Environment] = {}
    for name, name_node, value_node in _mapping(path, env_node, "environments"):
        own_lines = dict(default_lines)
        own = _section(path, value_node, f"environment `{name}`", base, lines=own_lines)
        values = {**defaults, **own}
        _outputs_of(path, name, name_node, own, values)
        syncs = values.pop(GITHUB_SECTION, False) or "sync" in values  # sync-only: no hosts
        github_only = syncs and "hosts" not in values
        for required in () if github_only else REQUIRED_YAML:
            if required == "remote-path" and "targets" in values:
                continue
            if YAML_FIELDS[required].attr not in values:
                missing = f"environment `{name}` has no `{required}`"
                fix = f"add `{required}:` to `{name}` (or to `defaults:`)"
                raise _error(path, name_node, missing, fix)
        environments[name] = Environment(name, path, values, own_lines)
    return ConfigFile(path, defaults, environments, default_lines)


def values(path: str, name: str | None) -> dict[str, Any]:
    """The typed values of environment `name` of the file at `path` (its `defaults:`
    alone when no environment is chosen)."""
    return layer(path, name)[0]


def layer(path: str, name: str | None) -> tuple[dict[str, Any], dict[str, Origin]]:
    """`values`, and where in the file each was set (its key and line)."""
    config = load(path)
    env = None if name is None else config.environment(name)
    chosen, lines = (
        (config.defaults, config.default_lines) if env is None else (env.values, env.lines)
    )
    keys = {o.attr: k for k, o in (*YAML_FIELDS.items(), *GITHUB_FIELDS.items())}
    origins = {a: Origin(Source.YAML, keys.get(a, a), path, n) for a, n in lines.items()}
    return {k: v for k, v in chosen.items() if k != GITHUB_SECTION}, origins
