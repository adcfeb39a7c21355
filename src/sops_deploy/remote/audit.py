"""The audit trail: one JSON line per deploy appended to `<path>.deploy.log` (0600) on
the server — when, who, from which commit and run, and what happened, by key name only.

Bounded: a line names at most `MAX_NAMES` keys per list (`added_count` etc. give the
totals), and a log past `MAX_LOG_BYTES` is renamed to `<path>.deploy.log.1` (replacing
the previous one) before the next line is written, so the two files stay under about
twice that size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sops_deploy.inputs.runinfo import RunInfo, now
from sops_deploy.remote import safefile
from sops_deploy.remote.connection import Connection

AUDIT_SUFFIX = ".deploy.log"
MAX_NAMES = 100  # key names per list in one line; a 10,000-key change would be ~130 KB
MAX_LOG_BYTES = 1 << 20  # then the log is rotated to .1 (one generation kept)


@dataclass(frozen=True)
class Changes:
    """Key names a deploy adds, removes and changes (never values)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0


def audit_record(run: RunInfo, **fields: Any) -> dict[str, Any]:
    """One audit line: when, who, from which commit and run, and `fields` (names only);
    each key-name list is cut to `MAX_NAMES`, its length recorded as `<list>_count`."""
    for name in ("added", "removed", "changed"):
        if isinstance(fields.get(name), list):
            fields[f"{name}_count"] = len(fields[name])
            fields[name] = fields[name][:MAX_NAMES]
    return {
        "time": now(),
        "actor": run.actor,
        "commit": run.commit(),
        "run_url": run.run_url,
        **fields,
    }


def rotate_if_full(conn: Connection, path: str) -> bool:
    """Rename `<path>.deploy.log` to `.1` once it holds `MAX_LOG_BYTES` (under the lock,
    so no other deploy of this file appends meanwhile); True if it did."""
    log = path + AUDIT_SUFFIX
    try:
        size = conn.lstat(log).st_size  # lstat: a link is renamed, never followed
    except FileNotFoundError:
        return False
    if size is None or size < MAX_LOG_BYTES:
        return False
    conn.posix_rename(log, log + ".1")
    return True


def append_audit(conn: Connection, path: str, record: dict[str, Any]) -> None:
    """Append one JSON line to `<path>.deploy.log` (created 0600, never through a link)."""
    line = json.dumps(record, sort_keys=True) + "\n"
    safefile.append_private(conn, path + AUDIT_SUFFIX, line.encode(), "audit log")
