"""An environment's `sync:` section of sops-deploy.yaml: the store secrets it feeds.

    sync:
      vault:                         # vault-sync --env NAME
        - path: secret/apps/web      # MOUNT/PATH of a KV v2 secret
          keys: [DATABASE_URL, "APP_*"]   # optional, names or globs (default: all)
          prefix: ""                 # optional: each key is stored as PREFIX + key
      aws-secrets-manager:           # aws-sync --env NAME
        - name: prod/web
          kms-key-id: alias/prod-secrets  # optional

Read from PyYAML nodes like the rest of the file (`configfile.py`), so every error names
the file and line. `--path`/`--name` on the command line replace the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from sops_deploy.errors import UsageError
from sops_deploy.inputs.settings import check_glob

KINDS = {"vault": "path", "aws-secrets-manager": "name"}  # kind → the field naming the secret
FIELDS = {
    "vault": ("path", "keys", "prefix"),
    "aws-secrets-manager": ("name", "keys", "prefix", "kms-key-id"),
}


@dataclass(frozen=True)
class SyncTarget:
    """One secret to sync: its path (Vault) or name (AWS), and what goes into it."""

    where: str
    keys: tuple[str, ...] = ()
    prefix: str = ""
    kms_key_id: str | None = None
    line: int | None = None


def _error(path: str, node: Node, message: str, hint: str) -> UsageError:
    line = node.start_mark.line + 1
    return UsageError(f"{path}:{line}: {message}", hint, file=path, line=line)


def _pairs(path: str, node: Node, where: str) -> list[tuple[str, Node]]:
    if not isinstance(node, MappingNode):
        raise _error(path, node, f"{where} must be a mapping", "write `key: value` lines")
    out: list[tuple[str, Node]] = []
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if any(key == k for k, _ in out):
            raise _error(path, key_node, f"{where}: `{key}` appears twice", "keep one of them")
        out.append((key, value_node))
    return out


def _text(path: str, node: Node, where: str) -> str:
    if not isinstance(node, ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        raise _error(path, node, f"{where} must be a string", "write a plain value")
    return str(node.value)


def _target(path: str, kind: str, node: Node, where: str) -> SyncTarget:
    values: dict[str, Any] = {}
    for key, value in _pairs(path, node, where):
        if key not in FIELDS[kind]:
            known = ", ".join(FIELDS[kind])
            raise _error(path, value, f"{where}: unknown key `{key}`", f"known keys: {known}")
        if key == "keys":
            items = value.value if isinstance(value, SequenceNode) else [value]
            try:
                values[key] = tuple(check_glob(_text(path, i, f"{where}: keys")) for i in items)
            except UsageError as exc:
                raise _error(path, value, f"{where}: keys: {exc.message}", exc.hint) from None
        else:
            values[key] = _text(path, value, f"{where}: {key}")
    name = KINDS[kind]
    if not values.get(name, "").strip("/ "):
        example = "secret/apps/web" if kind == "vault" else "prod/web"
        raise _error(path, node, f"{where} has no `{name}`", f"add `{name}: {example}`")
    return SyncTarget(
        values[name].strip(),
        values.get("keys", ()),
        values.get("prefix", ""),
        values.get("kms-key-id"),
        node.start_mark.line + 1,
    )


def parse(path: str, node: Node, where: str, base: Path) -> dict[str, tuple[SyncTarget, ...]]:
    """`sync:` as {kind: targets}; `base` is unused (no field of it is a local path)."""
    del base
    out: dict[str, tuple[SyncTarget, ...]] = {}
    for kind, value in _pairs(path, node, where):
        if kind not in KINDS:
            raise _error(
                path, value, f"{where}: unknown store `{kind}`", "known: " + ", ".join(KINDS)
            )
        if not isinstance(value, SequenceNode) or not value.value:
            raise _error(
                path, value, f"{where}: {kind} must be a non-empty list", "write `- path: …`"
            )
        targets = [
            _target(path, kind, item, f"{where}: {kind}[{i}]")
            for i, item in enumerate(value.value, 1)
        ]
        seen: dict[str, int] = {}
        for t in targets:
            if t.where in seen:
                raise _error(path, value, f"{where}: {kind} lists {t.where} twice", "keep one")
            seen[t.where] = t.line or 0
        out[kind] = tuple(targets)
    return out
