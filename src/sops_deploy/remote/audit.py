"""The audit trail: one JSON line per deploy appended to `<path>.deploy.log` (0600) on
the server — when, who, from which commit and run, and what happened, by key name only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sops_deploy.remote import safefile
from sops_deploy.remote.connection import Connection
from sops_deploy.runinfo import RunInfo, now

AUDIT_SUFFIX = ".deploy.log"


@dataclass(frozen=True)
class Changes:
    """Key names a deploy adds, removes and changes (never values)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0


def audit_record(run: RunInfo, **fields: Any) -> dict[str, Any]:
    """One audit line: when, who, from which commit and run, and `fields` (names only)."""
    return {
        "time": now(),
        "actor": run.actor,
        "commit": run.commit(),
        "run_url": run.run_url,
        **fields,
    }


def append_audit(conn: Connection, path: str, record: dict[str, Any]) -> None:
    """Append one JSON line to `<path>.deploy.log` (created 0600, never through a link)."""
    line = json.dumps(record, sort_keys=True) + "\n"
    safefile.append_private(conn, path + AUDIT_SUFFIX, line.encode(), "audit log")
