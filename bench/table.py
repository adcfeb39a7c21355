"""The performance tables, rendered from bench/results/<commit>.json, and their copy in
docs/performance.md.

Owns the Markdown of `make bench` (figures against the raw pipeline, connection stages)
and of `make bench-peers` (the same jobs through the tools users would pick instead).
`python bench/table.py` rewrites docs/performance.md's tables (`--readme` names another
page), between the `<!-- bench:begin -->`/`<!-- bench:end -->` and
`<!-- peers:begin -->`/`<!-- peers:end -->` markers, from the latest results (or
`--commit C`); `--check` only says whether the page is current (exit 1 if not).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from bench import store
from bench.stages import STAGES, STALL_MS, STALL_STAGES

README = store.REPO / "docs" / "performance.md"  # the page that holds the tables
FIGURES = store.REPO / "docs" / "performance-figures.md"  # its slow-link table


def _met(value: object) -> str:
    return "–" if value is None else ("met" if value else "**missed**")


def bench_markdown(data: dict[str, Any]) -> str:
    """(a)–(h): sops-deploy against the raw OpenSSH pipeline, one row a figure."""
    lines = [
        f"Medians of {data['runs']} runs after a warm-up; ratios from the same run.",
        "",
        "| figure | sops-deploy | baseline | ratio | target | |",
        "|---|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        ratio = "–" if row["ratio"] is None else f"{row['ratio']:.2f}"
        lines.append(
            f"| {row['figure']} | {row['ours']} | {row['baseline']} | {ratio} "
            f"| {row['target'] or '–'} | {_met(row['met'])} |"
        )
    return "\n".join(lines) + "\n"


def stages_markdown(data: dict[str, Any]) -> str:
    """(i): connection stages of our Paramiko connection beside OpenSSH's; stalls marked."""
    ours = data.get("stages", {}).get("sops-deploy", {})
    theirs = data.get("stages", {}).get("openssh", {})
    if not ours:
        return ""
    lines = [
        f"(i) Connection stages to one host, medians of {data['runs']} (ms; OpenSSH from "
        f"`sftp -vv` line times). A round-trip stage over {STALL_MS:g} ms is a TCP stall.",
        "",
        "| stage | sops-deploy (Paramiko) | OpenSSH | difference |",
        "|---|---|---|---|",
    ]

    def cell(values: dict[str, float], stage: str) -> str:
        if stage not in values:
            return "–"
        stall = stage in STALL_STAGES and values[stage] > STALL_MS
        return f"{values[stage]:.1f}" + (" **stall**" if stall else "")

    for stage in STAGES:
        a, b = ours.get(stage), theirs.get(stage)
        diff = "–" if a is None or b is None else f"{a - b:+.1f}"
        lines.append(f"| {stage} | {cell(ours, stage)} | {cell(theirs, stage)} | {diff} |")
    total_a, total_b = sum(ours.values()), sum(theirs.values())
    lines.append(f"| total | {total_a:.1f} | {total_b:.1f} | {total_a - total_b:+.1f} |")
    stalls = [s for s in STALL_STAGES if ours.get(s, 0.0) > STALL_MS]
    lines += ["", f"sops-deploy TCP stalls: {', '.join(stalls) or 'none'}."]
    return "\n".join(lines) + "\n"


def link_markdown(data: dict[str, Any]) -> str:
    """(j): per round-trip time, ours against the raw pipeline over the same link, 1 and 16
    hosts; and the round trips each waits for (slope of time against RTT, one host)."""
    link = data.get("link") or {}
    if not link.get("points"):
        return ""
    hosts = link["hosts"]
    head = " | ".join(f"{n} host{'s' if n > 1 else ''}: ours / raw / ratio" for n in hosts)
    lines = [
        "(j) Over a slow link (a proxy delaying each direction by half the round trip), "
        "50-key changed deploy, medians:",
        "",
        f"| round trip | {head} |",
        "|---|" + "---|" * len(hosts),
    ]
    for rtt in link["rtts_ms"]:
        cells = []
        for n in hosts:
            p = next(p for p in link["points"] if p["rtt_ms"] == rtt and p["hosts"] == n)
            cells.append(f"{p['ours']:.2f} s / {p['raw']:.2f} s / {p['ratio']:.2f}×")
        lines.append(f"| {rtt} ms | " + " | ".join(cells) + " |")
    trips = link["round_trips"]
    lines += [
        "",
        f"Round trips waited for per deploy (slope of time against RTT, one host): "
        f"sops-deploy {trips['ours']:.1f}, OpenSSH pipeline {trips['raw']:.1f}.",
    ]
    return "\n".join(lines) + "\n"


def docs_with_link(text: str, bench: dict[str, Any]) -> str:
    """The performance figures page with its slow-link table replaced."""
    body = f"Measured at commit `{bench['commit']}`:\n\n" + link_markdown(bench["bench"])
    return _replace(text, "latency", body)


def _tool_rank(item: tuple[str, dict[str, Any]]) -> tuple[int, str]:
    """sops-deploy, then the raw pipeline, then the peers that ran, then those missing."""
    name, tool = item
    first = {"sops-deploy": 0, "raw OpenSSH (xargs -P)": 1}.get(name)
    return (first if first is not None else 3 if "missing" in tool else 2, name)


def peers_markdown(data: dict[str, Any]) -> str:
    """The same jobs through each peer: seconds, ratio to sops-deploy, peak RSS."""
    jobs: list[str] = data["job_order"]
    tools = dict(sorted(data["tools"].items(), key=_tool_rank))
    ours = data["results"].get("sops-deploy", {})
    lines = [
        f"Medians of {data['runs']} runs after a warm-up; (×) is the ratio to sops-deploy "
        "on the same job in the same run; RSS is the largest single process.",
        "",
        "| tool | " + " | ".join(data["job_titles"][j] for j in jobs) + " | peak RSS |",
        "|---|" + "---|" * (len(jobs) + 1),
    ]
    for name, tool in tools.items():
        if "missing" in tool:
            lines.append(f"| {name} | not available: {tool['missing']} |" + " |" * len(jobs))
            continue
        results = data["results"].get(name, {})
        cells = []
        for job in jobs:
            got = results.get(job)
            if got is None:
                cells.append("–")
            elif "error" in got:
                cells.append("failed")
            else:
                base = ours.get(job, {}).get("median")
                ratio = f" ({got['median'] / base:.1f}×)" if base and name != "sops-deploy" else ""
                cells.append(f"{got['median']:.2f} s{ratio}")
        rss = [g["max_rss_kib"] for g in results.values() if "max_rss_kib" in g]
        peak = f"{max(rss) / 1024:.0f} MiB" if rss else "–"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {peak} |")
    lines += ["", "What each job does per tool:", ""]
    for name, tool in tools.items():
        if "missing" in tool:
            lines.append(f"- **{name}**: not available here: {tool['missing']}")
            continue
        lines.append(
            f"- **{name}** ({tool['version']}): {tool['does']} *Does not:* {tool['does_not']}"
        )
        for job, why in data["results"].get(name, {}).items():
            if "error" in why:
                lines.append(f"  - {data['job_titles'][job]} failed: {why['error']}")
    return "\n".join(lines) + "\n"


def _markers(text: str, name: str) -> re.Pattern[str]:
    pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(
            f"{README.name} has no <!-- {name}:begin --> … <!-- {name}:end --> markers"
        )
    return pattern


def _replace(text: str, name: str, body: str) -> str:
    return _markers(text, name).sub(lambda m: m.group(1) + "\n" + body + "\n" + m.group(2), text)


def readme_with_tables(
    text: str, bench: dict[str, Any] | None, peers: dict[str, Any] | None
) -> str:
    """`text` with the tables between the markers replaced (a missing section is kept)."""
    if bench is not None:
        _markers(text, "bench")
        commit = bench["commit"]
        b = bench["bench"]
        body = (
            f"Measured at commit `{commit}` on {b['machine']} ({b['measured']}):\n\n"
            + bench_markdown(b)
            + "\n"
            + stages_markdown(b)
        )
        text = _replace(text, "bench", body)
    if peers is not None:
        _markers(text, "peers")
        p = peers["peers"]
        body = (
            f"Measured at commit `{peers['commit']}` on {p['machine']} ({p['measured']}):\n\n"
            + peers_markdown(p)
        )
        text = _replace(text, "peers", body)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commit", help="use bench/results/<commit>.json, not the latest")
    parser.add_argument("--results", default=str(store.RESULTS))
    parser.add_argument("--readme", default=str(README))
    parser.add_argument("--check", action="store_true", help="exit 1 if the tables are stale")
    args = parser.parse_args(argv)
    results = Path(args.results)
    if args.commit:
        record = json.loads((results / f"{args.commit}.json").read_text())
        bench = record if "bench" in record else None
        peers = record if "peers" in record else None
    else:
        bench, peers = store.latest("bench", results), store.latest("peers", results)
    readme = Path(args.readme)
    old = readme.read_text()
    new = readme_with_tables(old, bench, peers)
    doc_old = FIGURES.read_text() if FIGURES.exists() else ""
    linked = bench is not None and (bench["bench"].get("link") or {}).get("points")
    doc_new = docs_with_link(doc_old, bench) if linked and bench is not None else doc_old
    if args.check:
        current = new == old and doc_new == doc_old
        print(f"{readme} tables are current" if current else f"{readme} tables are stale")
        return 0 if current else 1
    readme.write_text(new)
    if doc_new != doc_old:
        FIGURES.write_text(doc_new)
    print(f"{readme}: tables from {bench and bench['commit']} / {peers and peers['commit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
