"""Timing one command: wall time and peak RSS, medians of runs after a warm-up.

Owns how every bench figure is taken (bench.py, peers.py): a subprocess waited for with
`os.wait4`, so its rusage gives the peak RSS of the largest process in its tree.
"""

from __future__ import annotations

import os
import random
import statistics
import string
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Timing:
    median: float
    runs: list[float]
    max_rss_kib: int = 0


def run_timed(
    argv: list[str], env: dict[str, str], *, shell: bool = False, ok: set[int] | None = None
) -> tuple[float, int]:
    """Wall time and peak RSS (KiB, largest process) of one command; raises if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv if not shell else ["bash", "-c", argv[0]],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode not in (ok or {0}):
        raise RuntimeError(f"command failed ({proc.returncode}): {argv[:3]}… {stderr[-800:]}")
    return elapsed, usage.ru_maxrss


def measure(fn: Callable[[int], tuple[float, int]], runs: int) -> Timing:
    fn(-1)  # warm-up
    samples = [fn(i) for i in range(runs)]
    return Timing(
        statistics.median(s[0] for s in samples),
        [round(s[0], 4) for s in samples],
        max(s[1] for s in samples),
    )


def random_env(keys: int, seed: int) -> str:
    rnd = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "-_./+"
    # ~100 bytes a line: 10,000 keys make ~1 MiB
    return "".join(
        f"KEY_{i:05d}={''.join(rnd.choice(alphabet) for _ in range(88))}\n" for i in range(keys)
    )
