"""Wall time of `sops-deploy deploy` to 1, 4, 8 and 16 local hosts, as ratios to 1 host.

Reuses `make bench`'s setup (local sshd on 127.0.0.1, each with its own SFTP directory).
Every run changes the file on every host (two sources alternate). Not part of the tests.

    .venv/bin/python -m bench.fleet_timing --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench.bench import Bench, run_timed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hosts", default="1,4,8,16")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.hosts.split(",")]
    with tempfile.TemporaryDirectory(prefix="sops-deploy-fleet-bench-") as tmp:
        bench = Bench(Path(tmp), args.runs, [max(counts)], big_keys=10)
        try:
            bench.setup()
            medians: dict[str, float] = {}
            cases = [(f"{n} hosts, --parallel {n}", n, n) for n in counts]
            cases.append((f"{max(counts)} hosts, --parallel 8 (default)", max(counts), 8))
            for label, n, par in cases:

                def argv_for(i: int, n: int = n, par: int = par) -> list[str]:
                    argv = bench.deploy_argv(bench.small[i % 2], n)
                    argv[argv.index("--parallel") + 1] = str(par)
                    return argv

                run_timed(argv_for(1), bench.env)  # warm-up
                times = [run_timed(argv_for(i), bench.env)[0] for i in range(args.runs)]
                medians[label] = statistics.median(times)
                print(f"{label}: median {medians[label]:.3f}s of {[round(t, 3) for t in times]}")
        finally:
            bench.stop()
    one = next(iter(medians.values()))
    print("\n| hosts | median wall time | ratio to 1 host |\n|---|---|---|")
    for label, value in medians.items():
        print(f"| {label} | {value:.2f} s | {value / one:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
