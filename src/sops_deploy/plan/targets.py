"""Several outputs per host from one set of secrets: which keys each target receives
(its `keys:` shell-style patterns; none: every key), what it holds — a file rendered for
its reader, or (`files`) one file per key holding exactly the value's bytes — and the
problems of that: a value a target's reader cannot carry, a key that is not a safe file
name, a target that receives nothing (errors), a key that no target receives (warning).

Pure data: nothing here reads a file, a server or the environment.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase

from sops_deploy import envfile
from sops_deploy.envfile import Secrets
from sops_deploy.errors import Problem
from sops_deploy.inputs.settings import Target
from sops_deploy.plan.readback import ReadBack

MANIFEST = ".sops-deploy-manifest"  # in a files target's directory: the names it wrote
# A file name every filesystem and reader takes as it is: no path separator, no leading
# dot (hidden, and the tool's own files start with one), no space or shell character.
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")
_SHOWN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # an odd key may be a pasted value: not shown


@dataclass(frozen=True)
class TargetPlan:
    """What one target holds on every host: the keys it receives and their rendering
    (`content` for a file; `files`, name → bytes, for a `files` directory)."""

    target: Target
    secrets: Secrets
    content: bytes = b""
    files: dict[str, bytes] = field(default_factory=dict)
    # Masks what is read back from a server for this target (readback.py).
    read_back: ReadBack = field(default_factory=ReadBack, compare=False, repr=False)

    @property
    def sha256(self) -> str:
        if self.target.format != "files":
            return hashlib.sha256(self.content).hexdigest()
        digest = hashlib.sha256()
        for name in sorted(self.files):
            digest.update(f"{name}\0{hashlib.sha256(self.files[name]).hexdigest()}\n".encode())
        return digest.hexdigest()

    def values(self) -> dict[str, str]:
        """Key → value as this target's reader reads them back (proved by the plan)."""
        return {key: entry.value for key, entry in self.secrets.items()}


def select(secrets: Secrets, patterns: Sequence[str]) -> Secrets:
    """The keys matching any of `patterns` (shell-style, case-sensitive), in source order."""
    if not patterns:
        return dict(secrets)
    return {k: e for k, e in secrets.items() if any(fnmatchcase(k, p) for p in patterns)}


def plan_targets(
    targets: Sequence[Target], secrets: Secrets, *, listed: bool
) -> tuple[list[TargetPlan], list[Problem]]:
    """Each target's keys and rendering, and every problem of them (errors and warnings).

    `listed`: the targets come from `targets:` (so problems name their target, and a key
    no target receives is warned about)."""
    plans: list[TargetPlan] = []
    problems: list[Problem] = []
    for target in targets:
        chosen = select(secrets, target.keys)
        if target.format == "files":
            plan, found = _files_plan(target, chosen)
        else:
            content, found = envfile.render_checked(chosen, target.format)
            plan = TargetPlan(target, chosen, content)
        if not chosen and secrets:
            found.append(_nothing_for(target, secrets))
        if listed:
            found = [replace(p, message=f"{p.message} (target {target.label})") for p in found]
        problems += found
        plans.append(plan)
    if listed:
        received = {k for plan in plans for k in plan.secrets}
        problems += [
            _unreceived(e.file, e.line, k) for k, e in secrets.items() if k not in received
        ]
    return plans, problems


def _files_plan(target: Target, chosen: Secrets) -> tuple[TargetPlan, list[Problem]]:
    """One file per key, named after the key, holding the value's UTF-8 bytes exactly."""
    problems: list[Problem] = []
    folded: dict[str, str] = {}
    for key, entry in chosen.items():
        if not SAFE_NAME.match(key):
            problems.append(
                Problem(
                    entry.file,
                    entry.line,
                    key if _SHOWN.match(key) else None,
                    "unsafe-file-name",
                    "the key is not a safe file name for the files format (letters, "
                    "digits, `_`, `.`, `-`; not starting with `.`)",
                    "rename the key, or leave it out of this target's `keys:`",
                )
            )
        elif key.lower() in folded:
            problems.append(
                Problem(
                    entry.file,
                    entry.line,
                    key,
                    "file-name-collision",
                    f"the key and {folded[key.lower()]} differ only in case: one file on a "
                    "case-insensitive filesystem",
                    "rename one of them, or leave one out of this target's `keys:`",
                )
            )
        folded.setdefault(key.lower(), key)
    files = {key: entry.value.encode("utf-8") for key, entry in chosen.items()}
    return TargetPlan(target, chosen, files=files), problems


def _nothing_for(target: Target, secrets: Secrets) -> Problem:
    first = next(iter(secrets.values()))
    return Problem(
        first.file,
        None,
        None,
        "target-without-keys",
        f"no key matches the keys: of the target {target.label} ({', '.join(target.keys)})",
        "fix the patterns in `keys:` (shell-style: DB_*, APP_[AB]), or drop the target",
    )


def _unreceived(file: str, line: int | None, key: str) -> Problem:
    return Problem(
        file,
        line,
        key,
        "key-without-target",
        "no target receives this key",
        "add it (or a pattern matching it) to a target's `keys:`, or remove it from the source",
        "warning",
    )
