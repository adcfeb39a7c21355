"""`sops-deploy.yaml`: named environments (files, hosts, remote path, ...) loaded and validated.

The file is read with PyYAML's node API (`yaml.compose`), so every error names the file and
the line: unknown keys, wrong types, duplicate keys, missing fields and bad values (a host
that is not `[user@]host[:port]`, a mode that would make the secrets world-readable).

A loaded environment becomes `SOPS_DEPLOY_<FLAG>` defaults, merged *under* the real
environment, so the precedence is: flags > `SOPS_DEPLOY_*` / action inputs > this file >
built-in defaults. Relative paths in the file are relative to the file's own directory.

    defaults:                      # optional: shared by every environment
      known-hosts: known_hosts
    environments:
      production:
        files: [common.env.encrypted, production.env.encrypted]   # later overrides earlier
        hosts: [deploy@web1.example.com, deploy@web2.example.com:2222]
        remote-path: /srv/app/.env
        github:                    # optional: `sops-deploy github-sync --env production`
          repo: octo-org/app
          environment: production  # or `dependabot: true`; default: repository secrets
          keys: [DATABASE_URL, "APP_*"]
          prefix: ""
          prune: true
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from sops_deploy.config import (
    check_format,
    check_remote_path,
    parse_host,
    parse_mode,
)
from sops_deploy.defaults import DEFAULT_CONFIG, ENV_PREFIX
from sops_deploy.errors import UsageError

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_STR = "tag:yaml.org,2002:str"


@dataclass(frozen=True)
class Field:
    """One key an environment may set: its type, the env name it feeds, and its checks."""

    kind: str  # str | list | int | number | bool | mode
    env: str  # the SOPS_DEPLOY_<env> it becomes
    path: bool = False  # resolved relative to the config file's directory
    check: Callable[[str], object] | None = None
    minimum: float | None = None
    example: str = ""  # a good value to suggest in errors


def _known_hosts_path(text: str) -> bool:
    return "\n" not in text.strip() and " " not in text.strip()


FIELDS: dict[str, Field] = {
    "files": Field("list", "FILE", path=True),
    "hosts": Field("list", "HOST", check=parse_host),
    "remote-path": Field("str", "REMOTE_PATH", check=check_remote_path),
    "format": Field("str", "FORMAT", check=check_format),
    "file-mode": Field("mode", "FILE_MODE", check=parse_mode),
    "post-command": Field("str", "POST_COMMAND"),
    "backup": Field("int", "BACKUP", minimum=0, example="5"),
    "required": Field("list", "REQUIRED"),
    "schema": Field("str", "SCHEMA", path=True),
    "known-hosts": Field("str", "KNOWN_HOSTS", path=True),
    "host-key-fingerprints": Field("list", "HOST_KEY_FINGERPRINT"),
    "user": Field("str", "USER"),
    "port": Field("int", "PORT", minimum=1, example="22"),
    "jump-host": Field("str", "JUMP_HOST", check=lambda t: parse_host(t, what="--jump-host")),
    "ssh-key-file": Field("str", "SSH_KEY_FILE", path=True),
    "timeout": Field("number", "TIMEOUT", minimum=0.001, example="20"),
    "retries": Field("int", "RETRIES", minimum=0, example="2"),
    "parallel": Field("int", "PARALLEL", minimum=1, example="8"),
    "fail-fast": Field("bool", "FAIL_FAST"),
    "follow-symlinks": Field("bool", "FOLLOW_SYMLINKS"),
    "lock-timeout": Field("number", "LOCK_TIMEOUT", minimum=0, example="60"),
    "rollback-on-failure": Field("bool", "ROLLBACK_ON_FAILURE"),
}
REQUIRED_FIELDS = ("hosts", "remote-path")  # unless the environment only syncs GitHub
# An environment's `github:` section (sops-deploy github-sync).
GITHUB_FIELDS: dict[str, Field] = {
    "repo": Field("str", "REPO"),
    "environment": Field("str", "GITHUB_ENVIRONMENT"),
    "dependabot": Field("bool", "DEPENDABOT"),
    "keys": Field("list", "KEYS"),
    "prefix": Field("str", "PREFIX"),
    "prune": Field("bool", "PRUNE"),
}
TOP_LEVEL = ("version", "defaults", "environments")


@dataclass(frozen=True)
class Environment:
    """One named environment, validated: its settings as `SOPS_DEPLOY_*` defaults."""

    name: str
    config: str
    defaults: dict[str, str]


@dataclass(frozen=True)
class ConfigFile:
    path: str
    defaults: dict[str, str]
    environments: dict[str, Environment]

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


def _type_name(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return {
        _INT: "a number",
        _FLOAT: "a number",
        _BOOL: "a boolean",
        "tag:yaml.org,2002:null": "empty",
    }.get(node.tag, "a string")


def _mapping(path: str, node: Node, where: str) -> list[tuple[str, Node, Node]]:
    """The (key, key node, value node) pairs of a mapping; duplicate keys are an error."""
    if not isinstance(node, MappingNode):
        raise _error(
            path, node, f"{where} must be a mapping, not {_type_name(node)}", "write `key: value`"
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


def _scalar(path: str, name: str, node: Node, field: Field) -> str:
    """Check one scalar against the field's type; returns its text for SOPS_DEPLOY_*."""
    if not isinstance(node, ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        raise _error(
            path,
            node,
            f"`{name}` must be {_WANT[field.kind]}, not {_type_name(node)}",
            f"write `{name}: {_EXAMPLE[field.kind]}`",
        )
    text = str(node.value)
    if field.kind == "mode":  # the literal text: YAML 1.1 would read 0600 as the number 384
        return text
    if field.kind == "str":
        if node.tag != _STR:
            raise _error(
                path,
                node,
                f"`{name}` must be {_WANT['str']}, not {_type_name(node)}",
                f'quote it: `{name}: "{text}"`',
            )
        return text
    if field.kind == "bool":
        if node.tag != _BOOL:
            raise _error(
                path, node, f"`{name}` must be true or false, not {text!r}", f"write `{name}: true`"
            )
        return "true" if text.lower() in ("true", "yes", "on", "y") else "false"
    tags = (_INT,) if field.kind == "int" else (_INT, _FLOAT)
    if node.tag not in tags:
        raise _error(
            path,
            node,
            f"`{name}` must be {_WANT[field.kind]}, not {_type_name(node)}",
            f"write `{name}: {field.example or _EXAMPLE[field.kind]}`",
        )
    value = float(text)
    if field.minimum is not None and value < field.minimum:
        raise _error(
            path,
            node,
            f"`{name}` is {text}; it must be at least {field.minimum:g}",
            f"write `{name}: {field.example or _EXAMPLE[field.kind]}`",
        )
    return text


_WANT = {
    "str": "a string",
    "list": "a list of strings",
    "int": "a whole number",
    "number": "a number",
    "bool": "true or false",
    "mode": "an octal mode",
}
_EXAMPLE = {
    "str": '"..."',
    "list": "[a, b]",
    "int": "8",
    "number": "20",
    "bool": "true",
    "mode": '"0600"',
}


def _value(path: str, name: str, node: Node, field: Field, base: Path) -> str:
    """Validate one field's node and render it as the text of its SOPS_DEPLOY_* variable."""
    if field.kind == "list":
        items = node.value if isinstance(node, SequenceNode) else [node]
        if isinstance(node, SequenceNode) and not items:
            raise _error(
                path, node, f"`{name}` is an empty list", f"list at least one, or drop `{name}`"
            )
        texts = [_scalar(path, name, item, Field("str", field.env)) for item in items]
        nodes = list(items)
    else:
        texts = [_scalar(path, name, node, field)]
        nodes = [node]
    out = []
    for text, item in zip(texts, nodes, strict=True):
        if field.path and not (name == "known-hosts" and not _known_hosts_path(text)):
            text = text if os.path.isabs(text) else os.path.normpath(base / text)
        if field.check is not None:
            try:
                field.check(text)
            except UsageError as exc:
                raise _error(path, item, f"`{name}`: {exc.message}", exc.hint) from None
        out.append(text)
    return "\n".join(out)


def _section(
    path: str, node: Node, where: str, base: Path, fields: dict[str, Field] | None = None
) -> dict[str, str]:
    fields = FIELDS if fields is None else fields
    out: dict[str, str] = {}
    for key, key_node, value_node in _mapping(path, node, where):
        if key == "github" and fields is FIELDS:
            out.update(_section(path, value_node, f"{where}: github", base, GITHUB_FIELDS))
            out[ENV_PREFIX + "GITHUB_SECTION"] = "true"
            continue
        field = fields.get(key)
        if field is None:
            raise _error(
                path,
                key_node,
                f"{where}: unknown key `{key}`",
                "known keys: " + ", ".join([*fields, *(["github"] if fields is FIELDS else [])]),
            )
        out[ENV_PREFIX + field.env] = _value(path, key, value_node, field, base)
    return out


def load(path: str) -> ConfigFile:
    """Read and validate a sops-deploy.yaml; every problem is a UsageError with file:line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"--config {path}: {exc.strerror}",
            f"pass the path of your sops-deploy.yaml (default {DEFAULT_CONFIG})",
            file=path,
        ) from None
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
    defaults: dict[str, str] = {}
    env_node: Node | None = None
    for key, key_node, value_node in _mapping(path, root, "the file"):
        if key == "version":
            if not (isinstance(value_node, ScalarNode) and value_node.value == "1"):
                raise _error(path, value_node, "`version` must be 1", "write `version: 1`")
        elif key == "defaults":
            defaults = _section(path, value_node, "defaults", base)
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
        values = {**defaults, **_section(path, value_node, f"environment `{name}`", base)}
        github_only = ENV_PREFIX + "GITHUB_SECTION" in values and ENV_PREFIX + "HOST" not in values
        for required in () if github_only else REQUIRED_FIELDS:
            if ENV_PREFIX + FIELDS[required].env not in values:
                raise _error(
                    path,
                    name_node,
                    f"environment `{name}` has no `{required}`",
                    f"add `{required}:` to `{name}` (or to `defaults:`)",
                )
        environments[name] = Environment(name, path, values)
    return ConfigFile(path, defaults, environments)


def find(flag: str | None, env: Mapping[str, str]) -> str | None:
    """The config path: --config, else SOPS_DEPLOY_CONFIG, else the default when present."""
    chosen = flag or env.get(ENV_PREFIX + "CONFIG") or None
    if chosen:
        return chosen
    return DEFAULT_CONFIG if os.path.isfile(DEFAULT_CONFIG) else None


def environment_name(flag: str | None, env: Mapping[str, str]) -> str | None:
    """--env, else SOPS_DEPLOY_ENVIRONMENT (the action input), else SOPS_DEPLOY_ENV."""
    return flag or env.get(ENV_PREFIX + "ENVIRONMENT") or env.get(ENV_PREFIX + "ENV") or None


def merged_env(
    config_flag: str | None, env_flag: str | None, env: Mapping[str, str]
) -> dict[str, str]:
    """The environment with the chosen config values underneath the real variables.

    Empty variables (an action input left blank) do not hide the file's value.
    """
    path = find(config_flag, env)
    name = environment_name(env_flag, env)
    if path is None:
        if name is not None:
            raise UsageError(
                f"--env {name} needs a config file, and {DEFAULT_CONFIG} does not exist",
                f"create {DEFAULT_CONFIG}, or pass --config PATH",
            )
        return dict(env)
    config = load(path)
    values = dict(config.defaults)
    if name is not None:
        values = dict(config.environment(name).defaults)
    set_vars = {k: v for k, v in env.items() if v != "" or k not in values}
    return {**values, **set_vars}
