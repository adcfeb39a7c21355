"""One store secret made to hold exactly the selected keys: observe, compare, write, report.

The plan is a key-level diff of the secret's current map against the wanted one (names
only: `add`, `update`, `remove`), so a rerun with nothing changed writes nothing, `--check`
names the keys that differ, and a key left out of the file disappears on the next sync.
A secret sops-deploy did not create (no `managed-by=sops-deploy` mark) is refused and left
untouched unless `--adopt` is given; `--check` only warns about it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sops_deploy.errors import DriftFound, StoreError
from sops_deploy.output.reporter import Reporter
from sops_deploy.stores.model import MANAGED_BY, MANAGER, Current


@dataclass(frozen=True)
class SyncOptions:
    """How to sync: which keys, under which prefix, and whether only to look."""

    keys: tuple[str, ...] = ()
    prefix: str = ""
    dry_run: bool = False
    check: bool = False
    adopt: bool = False

    @property
    def mode(self) -> str:
        return "check" if self.check else "dry run" if self.dry_run else "sync"


class Store(Protocol):
    """One secret in one store (`vault.VaultSecret`, `aws.AwsSecret`)."""

    command: str  # vault-sync | aws-sync
    adopt_hint: str

    def describe(self) -> str: ...

    def read(self) -> Current: ...

    def write(self, values: dict[str, str], current: Current, source: str) -> int:
        """Make the secret hold `values` (marked as sops-deploy's, from `source`);
        returns the number of write requests made."""
        ...


@dataclass(frozen=True)
class Change:
    action: str  # add | update | remove
    key: str


def compare(wanted: Mapping[str, str], current: Mapping[str, object]) -> list[Change]:
    """The keys that differ, in the file's order, then the ones only the store has."""
    changes = [
        Change("add" if k not in current else "update", k)
        for k, v in wanted.items()
        if k not in current or current[k] != v
    ]
    changes += [Change("remove", k) for k in current if k not in wanted]
    return changes


@dataclass(frozen=True)
class Outcome:
    store: str
    changes: tuple[Change, ...]
    writes: int

    def keys(self, *actions: str) -> list[str]:
        return [c.key for c in self.changes if c.action in actions]


def run(
    store: Store, wanted: dict[str, str], opts: SyncOptions, source: str, reporter: Reporter
) -> Outcome:
    """Observe, compare, write unless only looking; the report of one secret."""
    current = store.read()
    if current.exists and not current.owned:
        refusal = StoreError(
            f"{store.describe()} exists and was not created by sops-deploy "
            f"(no {MANAGED_BY}={MANAGER}); it was left untouched",
            store.adopt_hint,
        )
        if not opts.adopt and not opts.check:
            raise refusal
        if not opts.adopt:
            reporter.warn(f"{refusal.message}; a sync needs --adopt")
    changes = compare(wanted, current.values if current.exists else {})
    stale = not current.exists or not current.owned or current.source != source
    if current.outdated:
        reporter.info(f"{store.describe()}: {current.outdated}")
    writes = 0
    reporter.info(f"{store.command} {opts.mode}: {len(wanted)} key(s) → {store.describe()}")
    if opts.mode == "sync" and (changes or stale or current.outdated):
        writes = store.write(wanted, current, source)
    outcome = Outcome(store.describe(), tuple(changes), writes)
    report(reporter, store.command, opts.mode, [outcome], len(wanted))
    return outcome


def report(reporter: Reporter, command: str, mode: str, outcomes: list[Outcome], kept: int) -> None:
    """The changes (key names only) on stdout and in the step summary."""
    md: list[str] = []
    for o in outcomes:
        reporter.line(f"sops-deploy {command} ({mode}): {o.store}")
        for c in o.changes:
            reporter.line(f"  {c.action:<7} {c.key}")
        unchanged = kept - len(o.keys("add", "update"))
        counts = {a: len(o.keys(a)) for a in ("add", "update", "remove")}
        total = ", ".join(f"{n} {a}" for a, n in counts.items() if n) or "nothing to change"
        reporter.line(f"{total}; {unchanged} unchanged; {o.writes} write request(s)")
        md += [f"### sops-deploy {command} ({mode}): `{o.store}`", ""]
        md += ["| action | key |", "|---|---|"] + [f"| {c.action} | `{c.key}` |" for c in o.changes]
        md += ["", f"{total}; {unchanged} unchanged", ""]
    reporter.append_summary("\n".join(md))


def finish(reporter: Reporter, mode: str, outcomes: list[Outcome]) -> None:
    """The action outputs of every secret synced; exit 3 when `--check` found drift."""

    def joined(*actions: str) -> str:
        return ",".join(dict.fromkeys(k for o in outcomes for k in o.keys(*actions)))

    changed = mode == "sync" and any(o.writes for o in outcomes)
    reporter.set_outputs(
        {
            "changed": "true" if changed else "false",
            "changed-keys": joined("add", "update", "remove"),
            "added-keys": joined("add"),
            "removed-keys": joined("remove"),
            "report": json.dumps(
                [{"store": o.store, "changes": [vars(c) for c in o.changes]} for o in outcomes]
            ),
        }
    )
    drifted = [o.store for o in outcomes if o.changes]
    if mode == "check" and drifted:
        reporter.info(f"drift: {', '.join(drifted)} differ(s) from the file")
        raise DriftFound(f"{len(drifted)} secret(s) differ from the file: {', '.join(drifted)}")
