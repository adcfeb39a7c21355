"""The figures of `make bench` (ratios from one run) and its table's rows, as data, each
with its target and whether it was met; bench/table.py renders them.

The rows are the issue table's (issue 28) plus the earlier ones: a deploy over a 40 ms
round-trip link against the raw pipeline over the same link, 16 such hosts against one,
the local 50-key deploy changed and unchanged, the 10,000-key file changed and unchanged,
`validate` against `sops decrypt` alone, the peak RSS of a 10,000-key deploy.
"""

from __future__ import annotations

from typing import Any

from bench.timing import Timing


def _link(link: dict[str, Any], rtt: int, hosts: int) -> dict[str, Any] | None:
    for p in link.get("points", []):
        if p["rtt_ms"] == rtt and p["hosts"] == hosts:
            return dict(p)
    return None


def figures(r: dict[str, Timing], host_counts: list[int], link: dict[str, Any]) -> dict[str, float]:
    f = {
        "b/a": r["b"].median / r["a"].median,
        "c/a": r["c"].median / r["a"].median,
        "e_b/e_a": r["e_b"].median / r["e_a"].median,
        "e_c/e_a": r["e_c"].median / r["e_a"].median,
        "version/python": r["version"].median / r["python"].median,
        "validate_ms": r["validate"].median * 1000,
        "validate/sops_decrypt": r["validate"].median / r["sops_decrypt"].median,
        "rss_b_mib": r["b"].max_rss_kib / 1024,
        "rss_e_mib": r["e_b"].max_rss_kib / 1024,
    }
    one = r[f"hosts{host_counts[0]}"].median
    for n in host_counts[1:]:
        f[f"hosts{n}/hosts{host_counts[0]}"] = r[f"hosts{n}"].median / one
    p1, p16 = _link(link, 40, 1), _link(link, 40, max(link.get("hosts") or [16]))
    if p1 is not None:
        f["link40"] = p1["ratio"]
    if p1 is not None and p16 is not None:
        f["link40_hosts16/hosts1"] = p16["ours"] / p1["ours"]
    return f


def rows(
    r: dict[str, Timing],
    host_counts: list[int],
    big_keys: int,
    link: dict[str, Any],
    targets: dict[str, float],
) -> list[dict[str, object]]:
    """The table's rows, as data."""
    f = figures(r, host_counts, link)
    ms = lambda k: f"{r[k].median * 1000:.0f} ms"  # noqa: E731
    out: list[dict[str, object]] = []

    def row(name: str, ours: str, base: str, key: str | None, value: float | None) -> None:
        target = targets.get(key) if key else None
        unit = "×"
        if key and key.endswith(("_mib", "_ms")):
            unit = "MiB" if key.endswith("_mib") else "ms"
        out.append(
            {
                "figure": name,
                "ours": ours,
                "baseline": base,
                "ratio": None if unit != "×" else value,
                "target": None
                if target is None
                else f"≤ {target:g}{'' if unit == '×' else ' ' + unit}",
                "met": None if target is None or value is None else value <= target,
            }
        )

    many = max(link.get("hosts") or [16])  # 16, or as many as the bench started
    p1, p16 = _link(link, 40, 1), _link(link, 40, many)
    if p1 is not None:
        row(
            "(j) deploy over a 40 ms round-trip link, 50 keys, changed (vs raw over it)",
            f"{p1['ours'] * 1000:.0f} ms",
            f"{p1['raw'] * 1000:.0f} ms",
            "link40",
            f["link40"],
        )
    if p1 is not None and p16 is not None:
        row(
            f"(j) {many} hosts, each behind such a link, vs one",
            f"{p16['ours'] * 1000:.0f} ms",
            f"{p1['ours'] * 1000:.0f} ms",
            "link40_hosts16/hosts1",
            f["link40_hosts16/hosts1"],
        )
    row("(b) deploy, 50 keys, file changes", ms("b"), ms("a"), "b/a", f["b/a"])
    row("(c) deploy, unchanged rerun", ms("c"), ms("a"), "c/a", f["c/a"])
    first = host_counts[0]
    for n in host_counts[1:]:
        loop = f"loop {ms(f'loop{n}')}, " if f"loop{n}" in r else ""
        key = f"hosts{n}/hosts{first}"
        row(
            f"(d) {n} hosts vs {first} ({loop}xargs -P {ms(f'xargs{n}')})",
            ms(f"hosts{n}"),
            ms(f"hosts{first}"),
            key,
            f[key],
        )
    row(f"(e) {big_keys}-key file, changed", ms("e_b"), ms("e_a"), "e_b/e_a", f["e_b/e_a"])
    row(f"(e) {big_keys}-key file, unchanged", ms("e_c"), ms("e_a"), "e_c/e_a", f["e_c/e_a"])
    row(
        "(f) `sops-deploy --version` vs `python3 -c pass`",
        ms("version"),
        ms("python"),
        "version/python",
        f["version/python"],
    )
    row("(g) peak RSS, deploy (b)", f"{f['rss_b_mib']:.1f} MiB", "–", None, None)
    row(
        f"(g) peak RSS, {big_keys}-key deploy (e)",
        f"{f['rss_e_mib']:.1f} MiB",
        "–",
        "rss_e_mib",
        f["rss_e_mib"],
    )
    row(
        "(h) `validate`, 20 keys, vs `sops decrypt` alone",
        ms("validate"),
        ms("sops_decrypt"),
        "validate/sops_decrypt",
        f["validate/sops_decrypt"],
    )
    if "check_stat" in r:
        row(
            "(k) cached sops checked before it runs: stat vs this user's record "
            "(baseline: the full SHA-256, on a first run or a changed file)",
            f"{r['check_stat'].median * 1000:.2f} ms",
            ms("check_hash"),
            None,
            None,
        )
    return out
