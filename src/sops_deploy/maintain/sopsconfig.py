"""`.sops.yaml`: read its creation rules, change their master keys, find the files they cover.

sops itself reads this file when it encrypts (`--filename-override`) and when it re-keys
(`sops updatekeys`); this module only edits the master-key lists (`age:`, `kms:`,
`hc_vault_transit_uri:`, `pgp:`, … — `masterkeys.KINDS`) and leaves every other setting of
a rule as it was.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from sops_deploy.errors import UsageError
from sops_deploy.maintain import masterkeys
from sops_deploy.sops import agekey

CONFIG_NAME = ".sops.yaml"
DOTENV_RULE = r"\.env\.encrypted$"
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".tox"}
FAQ = "see README#faq-sopsyaml"

HEADER = """\
# sops creation rules, written by `sops-deploy init`; edited by `sops-deploy recipients`.
# Every file matching path_regex is encrypted for the keys listed here (any one decrypts).
# input_type is read by sops-deploy; when you call sops yourself on a .env.encrypted file,
# pass `--input-type dotenv --output-type dotenv`.
"""


@dataclass(frozen=True)
class Rule:
    """One creation rule: which paths, for which age recipients (and other master keys:
    `(kind, key)` pairs), stored how."""

    path_regex: str
    recipients: tuple[str, ...]
    input_type: str | None
    others: tuple[tuple[str, str], ...] = ()

    def matches(self, relative: str) -> bool:
        return re.search(self.path_regex, relative) is not None


def render(
    recipients: list[str],
    path_regex: str = DOTENV_RULE,
    others: dict[str, list[str]] | None = None,
) -> str:
    """The `.sops.yaml` that `init` writes: one dotenv rule for the given age recipients and
    other master keys (`kms`, `hc_vault_transit_uri`, `pgp`, …: one key group)."""
    rule: dict[str, str] = {"path_regex": path_regex, "input_type": "dotenv"}
    if recipients:
        rule["age"] = ",".join(recipients)
    rule.update({kind: ",".join(keys) for kind, keys in (others or {}).items() if keys})
    doc = {"creation_rules": [rule]}
    return HEADER + yaml.safe_dump(doc, sort_keys=False, width=1000)


def load(path: Path) -> tuple[dict[str, object], list[Rule]]:
    """Parse and check `.sops.yaml`; every problem is a UsageError that says how to fix it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"{path}: no such file",
            f"run `sops-deploy init` to create it, or pass --sops-config PATH ({FAQ})",
            file=str(path),
        ) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise UsageError(
            f"{path}: not valid YAML ({getattr(exc, 'problem', exc)})",
            f"fix the YAML syntax, or delete it and run `sops-deploy init --force` ({FAQ})",
            file=str(path),
            line=line,
        ) from None
    raw_rules = doc.get("creation_rules") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not isinstance(raw_rules, list) or not raw_rules:
        raise UsageError(
            f"{path}: has no creation_rules list",
            f"add `creation_rules:` with a path_regex and age recipients ({FAQ})",
            file=str(path),
        )
    rules = [_rule(path, i, item) for i, item in enumerate(raw_rules, 1)]
    return doc, rules


def _rule(path: Path, index: int, item: object) -> Rule:
    where = f"{path}: creation rule {index}"
    if not isinstance(item, dict):
        raise UsageError(f"{where} is not a mapping", f"write it as `- path_regex: …` ({FAQ})")
    regex = str(item.get("path_regex") or "")
    try:
        re.compile(regex)
    except re.error as exc:
        raise UsageError(
            f"{where}: path_regex {regex!r} does not compile ({exc})",
            f"use a regular expression such as {DOTENV_RULE} ({FAQ})",
            file=str(path),
        ) from None
    holders = [item, *(g for g in item.get("key_groups") or [] if isinstance(g, dict))]
    recipients = [r for h in holders for r in _age_list(h.get("age"))]
    others = tuple(
        (kind, key) for h in holders for kind in masterkeys.KINDS for key in _age_list(h.get(kind))
    )
    if not recipients and not others:
        raise UsageError(
            f"{where} ({regex or 'every file'}) has no key: nobody could decrypt its files",
            f"add `age: age1…` (the output of `age-keygen -y secrets/age-key.txt`), or `kms:`, "
            f"`hc_vault_transit_uri:`, `pgp:` ({FAQ})",
            file=str(path),
        )
    for recipient in recipients:
        try:
            agekey.check_recipient(recipient)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc.message}", exc.hint, file=str(path)) from None
    input_type = item.get("input_type")
    return Rule(regex, tuple(recipients), str(input_type) if input_type else None, others)


def _age_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, list):
        return [str(p).strip() for p in value if str(p).strip()]
    return []


def change_recipient(
    doc: dict[str, object], recipient: str, *, add: bool, kind: str = "age"
) -> bool:
    """Add or remove `recipient` in every rule's `age:` — or the list `kind` names (`kms`,
    `hc_vault_transit_uri`, `pgp`, …) — or its key groups'; True if changed."""
    changed = False
    every = ("age", *masterkeys.KINDS)
    rules = doc.get("creation_rules")
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, dict):
            continue
        groups = [g for g in rule.get("key_groups") or [] if isinstance(g, dict)]
        holders = groups or [rule]
        lists = [_age_list(h.get(kind)) for h in holders]
        present = any(recipient in ages for ages in lists)
        if add and not present:
            holders[0][kind] = ",".join([*lists[0], recipient])
            changed = True
        elif not add and present:
            if any(
                all(k == recipient for name in every for k in _age_list(h.get(name)))
                for h, ages in zip(holders, lists, strict=True)
                if recipient in ages
            ):
                raise UsageError(
                    f"removing {recipient} would leave the rule for "
                    f"{rule.get('path_regex')!r} with no recipient: nobody could decrypt "
                    "its files",
                    "add the new recipient first (`sops-deploy recipients add age1…`), "
                    "then remove the old one",
                )
            for holder, ages in zip(holders, lists, strict=True):
                if recipient in ages:
                    rest = [a for a in ages if a != recipient]
                    if rest or kind == "age":
                        holder[kind] = ",".join(rest)
                    else:
                        del holder[kind]
            changed = True
    return changed


def dump(doc: dict[str, object], original: str) -> str:
    """Serialize `doc`, keeping the comment lines that opened the original file."""
    header = []
    for line in original.splitlines():
        if line.startswith("#") or not line.strip():
            header.append(line)
        else:
            break
    head = "\n".join(header).strip()
    body = yaml.safe_dump(doc, sort_keys=False, width=1000)
    return (head + "\n" if head else "") + body


def matching_files(root: Path, rules: list[Rule]) -> list[tuple[Path, Rule]]:
    """Every file under `root` (not in .git, venvs, caches) matched by the first rule."""
    found: list[tuple[Path, Rule]] = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            path = Path(directory) / name
            relative = path.relative_to(root).as_posix()
            if relative == CONFIG_NAME:
                continue
            rule = next((r for r in rules if r.matches(relative)), None)
            if rule is not None:
                found.append((path, rule))
    return found


def find(start: Path) -> Path | None:
    """The `.sops.yaml` sops would use from `start`: here, or in the nearest parent."""
    for directory in (start, *start.parents):
        candidate = directory / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None
