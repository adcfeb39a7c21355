"""What a run's results look like: the terminal tables, the step-summary Markdown and the
action outputs. Key names, statuses and counts only, never a value; everything here is
passed through the Reporter's redaction layer before it is written anywhere.

Sizes stay within GitHub's limits: a table cell names at most `CELL_KEYS` keys, the
differences table has at most `MAX_DIFF_ROWS` rows, and the `report` output lists at most
`REPORT_KEYS` keys per host and list (with `"truncated": true` when it cut some).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sops_deploy.output import mdsafe

if TYPE_CHECKING:
    from sops_deploy.deploy.rollout import HostResult, Plan

CELL_KEYS = 10
MAX_DIFF_ROWS = 500
REPORT_KEYS = 200
REPORT_BUDGET = 400_000  # bytes (UTF-16, as GitHub counts) the `report` output may take

LEGEND = (
    "added: in the encrypted file, missing on the host (a deploy adds it) · "
    "removed: on the host, not in the encrypted file (a deploy removes it) · "
    "changed: on both, with another value (values are never shown)"
)


def names(keys: Sequence[str], shown: int = CELL_KEYS) -> str:
    """Key names for one cell: the first `shown`, then how many more."""
    if len(keys) <= shown:
        return ", ".join(keys)
    return f"{', '.join(keys[:shown])} … and {len(keys) - shown} more"


def _aligned(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def host_table(results: list[HostResult]) -> list[str]:
    """The terminal table: host, result, time, reason (errors and key names, never values)."""
    rows = [("host", "path", "result", "time", "reason")]
    rows += [
        (r.host, r.path or "–", r.status, f"{r.seconds:.2f}s", r.reason or "–") for r in results
    ]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    total = ", ".join(f"{n} {status}" for status, n in counts.items())
    hosts = len(dict.fromkeys(r.host for r in results))
    where = f"{len(results)} target(s) on {hosts} host(s)" if hosts < len(results) else ""
    return [*_aligned(rows), f"{where or f'{hosts} host(s)'}: {total}"]


def key_rows(results: list[HostResult]) -> list[tuple[str, str, str]]:
    """(host, key, difference) for every key that differs and every mode drift."""
    rows = []
    for r in results:
        for label, keys in (("added", r.added), ("removed", r.removed), ("changed", r.changed)):
            rows += [(r.host, target_key(r, key), label) for key in keys]
        if r.mode_drift and r.mode_before is not None and r.mode_after is not None:
            mode = target_key(r, "(file mode)")
            rows.append((r.host, mode, f"{r.mode_before:04o} instead of {r.mode_after:04o}"))
    return rows


def target_key(r: HostResult, key: str) -> str:
    """`KEY`, or `TARGET:KEY` for a result of one of several targets (keys hold no `:`)."""
    return f"{r.target}:{key}" if r.target else key


def aligned_key_rows(results: list[HostResult]) -> list[str]:
    rows = key_rows(results)
    if not rows:
        return []
    legend = f"(added / removed / changed: what a deploy would do to that host. {LEGEND})"
    return ["", *_aligned([("host", "key", "difference"), *rows]), legend]


def _cell(text: str) -> str:
    """Server or file text in a cell: literal, never live Markdown or HTML (mdsafe.py)."""
    return mdsafe.text(text)


def summary_markdown(
    command: str, plan: Plan, results: list[HostResult], fix: Callable[[str], str]
) -> str:
    """The step summary: one row per host (❌ and the fix for a failure), the differences,
    and the legend that says what added / removed / changed mean."""
    rows = [
        "| host | result | added | removed | changed | sha256 | time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        mark = {"failed": "❌ ", "drift": "⚠️ ", "skipped": "⏭️ "}.get(r.status, "✅ ")
        result = f"{mark}{r.status}"
        if r.failed and r.error is not None:
            result += f": {_cell(r.error.message)}"
            if r.error.hint:
                result += f" — **fix:** {_cell(fix(r.error.hint))}"
        rows.append(
            f"| {mdsafe.code(r.host)} | {result} | {_cell(names(r.added)) or '–'} | "
            f"{_cell(names(r.removed)) or '–'} | {_cell(names(r.changed)) or '–'} | "
            f"`{plan.sha256[:12]}` | {r.seconds:.1f}s |"
        )
    return f"### sops-deploy {command}\n\n" + "\n".join(rows) + "\n" + _differences(results)


def _differences(results: list[HostResult]) -> str:
    diff = key_rows(results)
    rows = [
        f"| {mdsafe.code(host)} | {mdsafe.code(key)} | {_cell(what)} |"
        for host, key, what in diff[:MAX_DIFF_ROWS]
    ]
    if len(diff) > MAX_DIFF_ROWS:
        rows.append(f"| … | … | and {len(diff) - MAX_DIFF_ROWS} more (see the step log) |")
    rows += [
        f"| {mdsafe.code(r.host)} | – | {r.status}: {_cell(r.reason)} |"
        for r in results
        if r.status in ("failed", "skipped")
    ]
    if not rows:
        return ""
    return (
        "\n#### Differences and failures\n\n| host | key | difference |\n|---|---|---|\n"
        + "\n".join(rows)
        + f"\n\n_{LEGEND}_\n"
    )


def _keys(results: list[HostResult], attr: str) -> str:
    """Key names across hosts, each once; `TARGET:KEY` when the environment lists targets."""
    seen: dict[str, None] = {}
    for r in results:
        for k in getattr(r, attr):
            seen[target_key(r, k)] = None
    return ",".join(seen)


def _report_entry(r: HostResult, limit: int) -> dict[str, Any]:
    lists = {name: list(getattr(r, name)) for name in ("added", "removed", "changed")}
    cut = any(len(v) > limit for v in lists.values())
    entry: dict[str, Any] = {
        "host": r.host,
        "target": r.target or None,
        "format": r.format or None,
        "path": r.path,
        "status": r.status,
        **{name: keys[:limit] for name, keys in lists.items()},
        "mode_before": None if r.mode_before is None else f"{r.mode_before:04o}",
        "error": r.error.message if r.error else None,
        "backup": r.backup,
        "post_command": [
            {
                "label": c.label,
                "exit": c.exit_status,
                "timed_out": c.timed_out,
                "output_tail": c.output_tail,
            }
            for c in r.commands
        ],
        "rolled_back": r.rolled_back,
        "seconds": round(r.seconds, 3),
    }
    if cut:
        entry["truncated"] = True
    return entry


def report_json(results: list[HostResult], limit: int = REPORT_KEYS) -> str:
    """The `report` output: one object per host; key lists cut at `limit` names."""
    return json.dumps([_report_entry(r, limit) for r in results])


def outputs(plan: Plan, results: list[HostResult]) -> dict[str, str]:
    return {
        "changed": "true" if any(r.status == "changed" for r in results) else "false",
        "sha256": plan.sha256,
        "added-keys": _keys(results, "added"),
        "removed-keys": _keys(results, "removed"),
        "changed-keys": _keys(results, "changed"),
        "hosts": ",".join(dict.fromkeys(r.host for r in results)),
        "backup": ",".join(f"{r.host}:{r.backup}" for r in results if r.backup),
        "report": _report_within_budget(results),
    }


def _report_within_budget(results: list[HostResult]) -> str:
    """The report with fewer key names per list until it fits REPORT_BUDGET."""
    for limit in (REPORT_KEYS, 20, 0):
        text = report_json(results, limit)
        if len(text.encode("utf-16-le")) <= REPORT_BUDGET:
            return text
    return text
