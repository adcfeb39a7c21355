"""A smoke run of `make bench` with tiny counts: every figure is produced (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_smoke_produces_every_figure(tmp_path: Path) -> None:
    """The benchmark runs end to end and writes JSON and Markdown with all figures."""
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "bench.py"),
            "--runs",
            "1",
            "--hosts",
            "1,2",
            "--big-keys",
            "200",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data["figures"]) == {
        "b/a",
        "c/a",
        "e_b/e_a",
        "version/python",
        "rss_b_mib",
        "rss_e_mib",
        "hosts2/hosts1",
    }
    assert all(value > 0 for value in data["figures"].values())
    for name in ("a", "b", "c", "hosts1", "hosts2", "loop2", "xargs2", "e_a", "e_b", "version"):
        assert data["timings"][name]["median"] > 0
    table = (tmp_path / "results.md").read_text()
    assert "(b) deploy, file changes" in table
    assert "peak RSS" in table
