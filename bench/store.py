"""Benchmark results kept per commit: `bench/results/<commit>.json`, one file a commit.

Owns where results live and how a run is recorded: each file is named by the short hash
of the commit that was measured (`-dirty` when the work tree had changes) and holds one
section per benchmark (`bench` from `make bench`, `peers` from `make bench-peers`), so a
regression shows as a changed file in review and two commits compare with `diff`.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def commit_id(repo: Path = REPO) -> str:
    """`git rev-parse --short HEAD`, with `-dirty` if tracked files outside bench/ changed."""
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not head:
        return "unknown"
    dirty = subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":(exclude)bench/results",
            ":(exclude)README.md",
            ":(exclude)docs/performance.md",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{head}-dirty" if dirty else head


def save(section: str, data: dict[str, Any], directory: Path = RESULTS) -> Path:
    """Merge `data` as `section` into `<directory>/<commit>.json`; returns the path."""
    commit = commit_id()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{commit}.json"
    record: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    record["commit"] = commit
    record[section] = {
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {_cores()} cores",
        **data,
    }
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def latest(section: str, directory: Path = RESULTS) -> dict[str, Any] | None:
    """The most recently measured record that has `section`, or None."""
    best: tuple[str, dict[str, Any]] | None = None
    for path in directory.glob("*.json"):
        record = json.loads(path.read_text())
        if section in record:
            stamp = str(record[section].get("measured", ""))
            if best is None or stamp > best[0]:
                best = (stamp, record)
    return None if best is None else best[1]
