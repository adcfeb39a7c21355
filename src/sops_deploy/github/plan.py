"""The sync as data: facts in (the wanted names, what GitHub lists, the last state), the
operations out. No I/O; a value is used only through `tag` (an HMAC) or compared with a
variable's public value, and never appears in an operation.

Secrets, per name: missing on GitHub → create; present, tag equal to the state's and
GitHub's `updated_at` equal to the one recorded after our write → unchanged; tag differs
→ update ("changed in the file"); `updated_at` differs → update ("edited outside
sops-deploy"); no state entry → update ("not synced by sops-deploy before").
Variables carry public values, so they are compared directly.
Names the state says this source created and the file no longer holds (as that kind) are
deleted with `--prune`, otherwise reported as `left`; nothing else is ever deleted. The
state's word counts only when its seal verified (`State.proven`, see state.py), and a
secret written outside sops-deploy since the last sync (a later `updated_at`) is not
pruned either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sops_deploy.github.client import Remote
from sops_deploy.github.state import State

SECRET = "secret"  # noqa: S105 (a kind of name, not a password)
VARIABLE = "variable"
WRITES = ("create", "update", "delete")
UNPROVEN = "claimed by a sync state that is not sealed by this age identity; not pruned"


@dataclass(frozen=True)
class Wanted:
    """One key to sync: its GitHub name, kind, and value (used only through `tag`)."""

    name: str
    key: str
    kind: str  # secret | variable
    value: str

    def __repr__(self) -> str:  # never the value
        return f"Wanted({self.name!r}, {self.kind})"


@dataclass(frozen=True)
class Op:
    """One operation on GitHub: what, on which name, and why. Names only."""

    action: str  # create | update | delete | unchanged | left
    kind: str
    name: str
    reason: str = ""

    @property
    def writes(self) -> bool:
        return self.action in WRITES


@dataclass(frozen=True)
class Facts:
    wanted: tuple[Wanted, ...]
    in_file: Mapping[str, frozenset[str]]  # kind → every name the whole file maps to
    secrets: Mapping[str, Remote]
    variables: Mapping[str, Remote]
    state: State
    source: str
    kid: str  # the age recipient whose identity keys the tags now
    prune: bool = False


def plan(facts: Facts, tag: Callable[[str, str], str]) -> list[Op]:
    """The operations that make GitHub match the file, in a stable order."""
    ops: list[Op] = []
    state = facts.state
    same_key = state.kid == facts.kid and not state.unreadable
    for w in facts.wanted:
        if w.kind == VARIABLE:
            remote = facts.variables.get(w.name)
            if remote is None:
                ops.append(Op("create", VARIABLE, w.name, "missing on GitHub"))
            elif remote.value != w.value:
                ops.append(Op("update", VARIABLE, w.name, "value differs on GitHub"))
            else:
                ops.append(Op("unchanged", VARIABLE, w.name))
            continue
        remote = facts.secrets.get(w.name)
        owned = state.secrets.get(w.name)
        if remote is None:
            why = "deleted outside sops-deploy" if owned else "missing on GitHub"
            ops.append(Op("create", SECRET, w.name, why))
        elif owned is None or not owned.mac:
            ops.append(Op("update", SECRET, w.name, "not synced by sops-deploy before"))
        elif not same_key:
            ops.append(Op("update", SECRET, w.name, "last synced with another age identity"))
        elif remote.updated_at != owned.updated_at:
            ops.append(
                Op("update", SECRET, w.name, f"edited outside sops-deploy at {remote.updated_at}")
            )
        elif tag(w.name, w.value) != owned.mac:
            ops.append(Op("update", SECRET, w.name, "changed in the file since the last sync"))
        else:
            ops.append(Op("unchanged", SECRET, w.name))
    for kind, owned_names, remote_names in (
        (SECRET, state.secrets, facts.secrets),
        (VARIABLE, state.variables, facts.variables),
    ):
        for name, owned_entry in sorted(owned_names.items()):
            if name in facts.in_file.get(kind, frozenset()) or name not in remote_names:
                continue
            if owned_entry.by != facts.source:
                continue  # another source's name: never ours to delete
            if not state.proven:
                ops.append(Op("left", kind, name, UNPROVEN))
            elif kind == SECRET and facts.secrets[name].updated_at != owned_entry.updated_at:
                ops.append(Op("left", kind, name, "written outside sops-deploy since; not pruned"))
            elif facts.prune:
                ops.append(Op("delete", kind, name, "left the file (created by sops-deploy)"))
            else:
                ops.append(Op("left", kind, name, "left the file; --prune deletes it"))
    return ops


def next_state(
    facts: Facts,
    ops: list[Op],
    tag: Callable[[str, str], str],
    updated_at: Mapping[str, str],
    salt: str,
) -> State:
    """The state after `ops` were applied; `updated_at` is GitHub's, read back after writing."""
    from sops_deploy.github.state import Owned

    old = facts.state
    # Claims of a state this identity did not seal are not carried over (that would
    # launder a forged claim into a sealed state): only what the ops record now.
    secrets = dict(old.secrets) if old.proven else {}
    variables = dict(old.variables) if old.proven else {}
    by_name = {w.name: w for w in facts.wanted}
    for op in ops:
        if op.action == "delete":
            (secrets if op.kind == SECRET else variables).pop(op.name, None)
        elif op.action in ("create", "update", "unchanged") and op.kind == SECRET:
            w = by_name[op.name]
            secrets[op.name] = Owned(
                facts.source, tag(w.name, w.value), updated_at.get(op.name, "")
            )
        elif op.action in ("create", "update", "unchanged"):
            variables[op.name] = Owned(facts.source)
    return State(facts.kid, salt, old.synced_at, secrets, variables)
