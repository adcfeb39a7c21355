"""The slow-link sweep drawn as an SVG: our time over the raw pipeline's (ratio) against
the round-trip time, one line per host count, the 1.3× target dashed. Written by
`make bench` to docs/latency.svg, which docs/performance-figures.md embeds. Plain SVG
text, no plotting library."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import store

SVG = store.REPO / "docs" / "latency.svg"
W, H = 560, 320
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 24, 44
COLOURS = {1: "#1f6feb", 16: "#d1242f"}
TARGET = 1.3


def _ticks(top: float) -> list[float]:
    step = 0.5 if top <= 4 else 1.0 if top <= 8 else 2.0
    return [i * step for i in range(int(top / step) + 1)]


def svg(link: dict[str, Any]) -> str:
    points = link["points"]
    rtts = sorted({p["rtt_ms"] for p in points})
    top = max([TARGET, *(p["ratio"] for p in points)]) * 1.1
    x_max = max(rtts) or 1
    px = lambda rtt: LEFT + (W - LEFT - RIGHT) * rtt / x_max  # noqa: E731
    py = lambda ratio: TOP + (H - TOP - BOTTOM) * (1 - ratio / top)  # noqa: E731
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{LEFT}" y="16">sops-deploy time ÷ raw OpenSSH pipeline time</text>',
    ]
    for t in _ticks(top):
        y = py(t)
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{t:g}×</text>')
    for rtt in rtts:
        x = px(rtt)
        out.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{rtt}</text>')
    out.append(
        f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 8}" text-anchor="middle">'
        "round-trip time (ms)</text>"
    )
    y = py(TARGET)
    out.append(
        f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#555" '
        'stroke-dasharray="5,4"/>'
    )
    out.append(f'<text x="{W - RIGHT + 6}" y="{y + 4:.1f}">target {TARGET:g}×</text>')
    for n, colour in COLOURS.items():
        line = sorted((p for p in points if p["hosts"] == n), key=lambda p: p["rtt_ms"])
        if not line:
            continue
        path = " ".join(f"{px(p['rtt_ms']):.1f},{py(p['ratio']):.1f}" for p in line)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for p in line:
            out.append(
                f'<circle cx="{px(p["rtt_ms"]):.1f}" cy="{py(p["ratio"]):.1f}" r="3" '
                f'fill="{colour}"/>'
            )
        last = line[-1]
        label = f"{n} host{'s' if n > 1 else ''}: {last['ratio']:.2f}×"
        out.append(
            f'<text x="{W - RIGHT + 6}" y="{py(last["ratio"]) + 4:.1f}" fill="{colour}">'
            f"{label}</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(link: dict[str, Any], path: Path) -> None:
    path.write_text(svg(link))
