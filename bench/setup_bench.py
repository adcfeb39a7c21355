"""`make bench`, the action's setup: cold and warm, through real `act` runs on this machine.

One act run of tests/workflows/action-test.yml (`command: hosts`) times the action's setup
steps as act reports them (check the runner + prepare Python + install sops):
- cold: an empty tool cache (no venv, no uv) and empty pip and uv caches;
- warm: the same job again on the caches a cold run left (the venv is reused).
Python packages come from the hash-locked wheelhouse `make setup` downloads (no network),
so the figure is the action's own work, not a download from PyPI.
"""

from __future__ import annotations

import hashlib
import os
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ACT = REPO / ".venv" / "bin" / "act"
SETUP_STEPS = ("Check the runner", "Prepare Python", "Install sops")
TARGETS = {"cold": 10.0, "warm": 1.0}
_UNITS = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "ns": 1e-9}


def _wheelhouse() -> Path:
    locks = b"".join((REPO / "requirements" / n).read_bytes() for n in ("action.txt", "uv.txt"))
    return REPO / ".venv" / f"wheelhouse-{hashlib.sha256(locks).hexdigest()[:12]}"


def setup_seconds(output: str) -> float:
    """The summed durations of the setup steps in one act run's output."""
    total = 0.0
    for step in SETUP_STEPS:
        m = re.search(rf"Success - Main {re.escape(step)}[^\[]*\[([\d.]+)(s|ms|µs|ns)\]", output)
        if m is None:
            raise RuntimeError(f"act did not report step {step!r}:\n{output[-2000:]}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
    return total


def act_setup(root: Path, sops_dir: str) -> float:
    """One act run with the caches under `root`; the setup steps' seconds."""
    args = [str(ACT), "workflow_dispatch", "-W", "tests/workflows/action-test.yml"]
    args += ["-P", "ubuntu-latest=-self-hosted", "--action-offline-mode"]
    args += ["--action-cache-path", str(root / "act"), "--cache-server-addr", "127.0.0.1"]
    job_env = {
        "SD_REPO": str(REPO),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(_wheelhouse()),
        "PIP_CACHE_DIR": str(root / "pip"),
        "UV_CACHE_DIR": str(root / "uv"),
    }
    for key, value in job_env.items():
        args += ["--env", f"{key}={value}"]
    args += ["--input", "command=hosts", "--input", "host=bench.example"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "GITHUB_"))}
    env["PATH"] = f"{sops_dir}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(
        args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"act failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}"
        )
    return setup_seconds(proc.stdout + proc.stderr)


def measure_setup(runs: int, sops_dir: str) -> dict[str, list[float]]:
    """`runs` cold setups (each on fresh caches), each followed by a warm one."""
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="sops-deploy-setup-bench-") as tmp:
            cold.append(round(act_setup(Path(tmp), sops_dir), 3))
            warm.append(round(act_setup(Path(tmp), sops_dir), 3))
    return {"cold": cold, "warm": warm}


def markdown(timings: dict[str, list[float]]) -> str:
    lines = [
        f"Action setup in act (`command: hosts`), medians of {len(timings['cold'])} runs:",
        "",
        "| setup | seconds | runs | target | met |",
        "|---|---|---|---|---|",
    ]
    for name, label in (("cold", "cold: empty caches, no venv"), ("warm", "warm: venv reused")):
        median = statistics.median(timings[name])
        met = "yes" if median <= TARGETS[name] else "**no**"
        runs = ", ".join(f"{t:.2f}" for t in timings[name])
        lines.append(f"| {label} | {median:.2f} s | {runs} | ≤ {TARGETS[name]:g} s | {met} |")
    return "\n".join(lines) + "\n"
