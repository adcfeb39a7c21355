"""`make bench`: sops-deploy against the raw OpenSSH pipeline, side by side, in one run.

Every figure is a median of N timed runs after a warm-up, against local sshd instances on
127.0.0.1, and is printed as a ratio to a baseline measured in the same run:

  (a) baseline  `sops -d FILE | ssh HOST 'umask 077; cat > P.tmp && mv P.tmp P'`
  (b) `sops-deploy deploy` that changes the file      → (b)/(a)
  (c) the unchanged rerun                             → (c)/(a)
  (d) fan-out to 1, 4, 16, 64 hosts (ratio to 1 host), beside the baseline as a loop
      (up to 16 hosts) and as `xargs -P`
  (e) a 10,000-key (~1 MiB) file through (a) and (b)  → (e)b/(e)a
  (f) CLI start `sops-deploy --version` against `python3 -c pass`
  (g) peak RSS of (b) and (e)
  (h) `sops-deploy validate` of a 20-key file against `sops decrypt` of it alone
  (i) connection stages, ours against OpenSSH's (bench/stages.py): a TCP stall shows
  (j) over a slow link (bench/latency.py): round trips of 0, 10, 40, 100 ms, 1 and 16
      hosts, ours against the raw pipeline, and the round trips each waits for
  (k) the cached sops's digest check before it runs (stat against this user's record)

(a)–(d) deploy a 50-key file, (e) a 10,000-key one, changed and unchanged.

A fair baseline: the OpenSSH client runs with `-F none`, explicit options and an empty
local HOME, and each bench sshd sets the login shell's HOME to an empty directory
(`SetEnv HOME=`), so neither side reads rc files (a `pyenv init` in ~/.bashrc costs the
remote shell ~0.3 s; SFTP never runs a shell). That directory is also the SFTP start
directory and holds the deployed `.env`.

Writes bench/results/<commit>.json ("bench" section; bench/table.py turns it into the
docs/performance.md tables) and prints the tables.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import chart, figures, latency, stages, store, table
from bench.timing import Timing, measure, random_env, run_timed
from sops_deploy.inputs.environment import tool_places
from sops_deploy.sops import tools
from tests.sshd import Sshd, make_sshd
from tests.support import REPO, sops_encrypt, target_flags

# The installed console script, as users run it.
CLI = str(Path(sys.executable).parent / "sops-deploy")

# Targets (issues 18 and 28): ratios (same run) unless the key names a unit.
TARGETS = {
    "b/a": 1.15,
    "c/a": 1.1,
    "e_b/e_a": 1.3,
    "e_c/e_a": 1.2,
    "hosts64/hosts1": 2.5,
    "validate/sops_decrypt": 3.0,
    "version/python": 2.5,
    "rss_e_mib": 64.0,
    "link40": 1.3,
    "link40_hosts16/hosts1": 1.5,
}
SMALL_KEYS = 50
# The plain-loop baseline of (d) runs only up to this many hosts (64 × 0.3 s per run).
LOOP_MAX_HOSTS = 16


class Bench:
    def __init__(
        self,
        root: Path,
        runs: int,
        host_counts: list[int],
        big_keys: int,
        link_runs: int = 3,
        link_rtts: tuple[int, ...] = latency.RTTS_MS,
    ) -> None:
        self.root = root
        self.runs = runs
        self.link_runs = link_runs
        self.link_rtts = link_rtts
        self.host_counts = host_counts
        self.big_keys = big_keys
        self.sops = tools.find_sops(tool_places(os.environ))
        self.servers: list[Sshd] = []
        self.results: dict[str, Timing] = {}
        self.stages: dict[str, dict[str, float]] = {}
        self.link: dict[str, Any] = {}

    # --- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        keyfile = self.root / "age.txt"
        subprocess.run(["age-keygen", "-o", str(keyfile)], check=True, capture_output=True)
        self.recipient = subprocess.run(
            ["age-keygen", "-y", str(keyfile)], check=True, capture_output=True, text=True
        ).stdout.strip()
        self.age_key = keyfile.read_text()
        self.small = [self.encrypt(random_env(SMALL_KEYS, seed), f"small{seed}") for seed in (1, 2)]
        self.twenty = self.encrypt(random_env(20, 9), "twenty")
        self.big = [self.encrypt(random_env(self.big_keys, seed), f"big{seed}") for seed in (3, 4)]
        client = self.root / "client_ed25519"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client)], check=True
        )
        self.client = client
        known = []
        for i in range(max(self.host_counts)):
            home = self.srv_home(i)
            home.mkdir()
            server = make_sshd(
                self.root / f"sshd{i}",
                client_key=client,
                sftp_args=f"-d {home}",
                extra_config=f"SetEnv HOME={home}\n",
            )
            self.servers.append(server)
            known.append(server.known_hosts_line)
        self.known_hosts = self.root / "known_hosts"
        self.known_hosts.write_text("\n".join(known) + "\n")
        self.client_home = self.root / "client-home"
        self.client_home.mkdir()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPS_", "GITHUB_"))}
        self.env.update(
            AGE_KEY=self.age_key, SSH_PRIVATE_KEY=client.read_text(), SOPS_DEPLOY_SOPS=self.sops
        )
        # The baseline's shell and ssh: no rc files, no ssh_config, an empty HOME.
        self.sops_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.client_home),
            "LANG": "C.UTF-8",
            "SOPS_AGE_KEY": self.age_key,
        }

    def encrypt(self, plaintext: str, name: str) -> Path:
        out = self.root / f"{name}.env.encrypted"
        out.write_bytes(sops_encrypt(self.sops, plaintext.encode(), [self.recipient]))
        return out

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    # --- the commands ----------------------------------------------------------------------

    def srv_home(self, i: int) -> Path:
        """Server i's login HOME (empty but for the .env) and SFTP start directory."""
        return self.root / f"srv{i}"

    def srv_path(self, i: int) -> str:
        return str(self.srv_home(i) / ".env")

    def ssh_argv(self, i: int) -> list[str]:
        """OpenSSH's client for server i: no config file, every option explicit."""
        s = self.servers[i]
        return [
            "ssh",
            "-F",
            "none",
            "-i",
            str(self.client),
            "-p",
            str(s.port),
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            f"{s.user}@127.0.0.1",
        ]

    def decrypt_cmd(self, file: Path) -> str:
        return (
            f"{shlex.quote(self.sops)} decrypt --input-type dotenv --output-type dotenv "
            f"{shlex.quote(str(file))}"
        )

    def baseline_cmd(self, file: Path, i: int) -> str:
        path = shlex.quote(self.srv_path(i))
        remote = f"umask 077; cat > {path}.tmp && mv {path}.tmp {path}"
        return f"{self.decrypt_cmd(file)} | {shlex.join([*self.ssh_argv(i), remote])}"

    def deploy_argv(self, file: Path, hosts: int, command: str = "deploy") -> list[str]:
        return [
            CLI,
            command,
            "--file",
            str(file),
            *target_flags([s.host for s in self.servers[:hosts]], "~/.env", self.known_hosts),
            "--parallel",
            str(max(hosts, 1)),
        ]

    def shell(self, cmd: str) -> Callable[[int], tuple[float, int]]:
        """A timed baseline shell command: bash without rc files, clean environment."""
        return lambda _i: run_timed([cmd], self.sops_env, shell=True)

    # --- (a)–(g): deploys against the raw pipeline -------------------------------------

    def run(self) -> None:
        env = self.env
        small, big = self.small, self.big
        r = self.results
        r["a"] = measure(
            lambda i: run_timed([self.baseline_cmd(small[i % 2], 0)], self.sops_env, shell=True),
            self.runs,
        )
        r["b"] = measure(lambda i: run_timed(self.deploy_argv(small[i % 2], 1), env), self.runs)
        run_timed(self.deploy_argv(small[0], 1), env)
        r["c"] = measure(lambda i: run_timed(self.deploy_argv(small[0], 1), env), self.runs)
        for n in self.host_counts:
            r[f"hosts{n}"] = measure(
                lambda i, n=n: run_timed(self.deploy_argv(small[i % 2], n), env), self.runs
            )
            if n <= LOOP_MAX_HOSTS:
                loop = " && ".join(f"( {self.baseline_cmd(small[0], j)} )" for j in range(n))
                r[f"loop{n}"] = measure(self.shell(loop), self.runs)
            cmds = self.root / f"cmds{n}.txt"
            cmds.write_text("\0".join(self.baseline_cmd(small[0], j) for j in range(n)))
            xargs = f"xargs -0 -P {n} -I CMD bash --norc -c CMD < {shlex.quote(str(cmds))}"
            r[f"xargs{n}"] = measure(self.shell(xargs), self.runs)
        r["e_a"] = measure(
            lambda i: run_timed([self.baseline_cmd(big[i % 2], 0)], self.sops_env, shell=True),
            self.runs,
        )
        r["e_b"] = measure(lambda i: run_timed(self.deploy_argv(big[i % 2], 1), env), self.runs)
        run_timed(self.deploy_argv(big[0], 1), env)
        r["e_c"] = measure(lambda i: run_timed(self.deploy_argv(big[0], 1), env), self.runs)
        r["version"] = measure(lambda i: run_timed([CLI, "--version"], env), self.runs)
        r["python"] = measure(lambda i: run_timed([sys.executable, "-c", "pass"], env), self.runs)
        self.run_validate()
        self.run_toolcheck()
        self.run_stages()
        if self.link_runs > 0:
            self.link = latency.sweep(self, self.link_runs, self.link_rtts)

    # --- (k): the cached sops's digest check (toolcheck.py) --------------------------------

    def run_toolcheck(self) -> None:
        """Before a cached sops runs: the stat check against this user's record (every run)
        and the full SHA-256 it falls back to (first run, or after any change to the file)."""
        import time

        from sops_deploy.inputs.settings import ToolPlaces
        from sops_deploy.sops import toolcheck

        places = ToolPlaces(self.root / "toolcache", records=self.root / "records")
        binary, tag = Path(self.sops), tools.current_platform().tag
        toolcheck.record(places, "sops", "bench", tag, [binary])

        def timed(fn: Callable[[], object]) -> tuple[float, int]:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start, 0

        r = self.results
        check = lambda: toolcheck.problem(places, "sops", "bench", tag, [binary], None)  # noqa: E731
        r["check_stat"] = measure(lambda i: timed(check), self.runs)
        r["check_hash"] = measure(lambda i: timed(lambda: toolcheck.sha256_file(binary)), self.runs)

    # --- (h): validate, no network -------------------------------------------------------

    def run_validate(self) -> None:
        r, twenty = self.results, self.twenty
        argv = [CLI, "validate", "--file", str(twenty)]
        r["validate"] = measure(lambda i: run_timed(argv, self.env), self.runs)
        decrypt = [self.sops, "decrypt", "--input-type", "dotenv", "--output-type", "dotenv"]
        r["sops_decrypt"] = measure(
            lambda i: run_timed([*decrypt, str(twenty)], self.sops_env), self.runs
        )

    # --- (i): connection stages ------------------------------------------------------------

    def run_stages(self) -> None:
        (self.srv_home(0) / ".env").touch(exist_ok=True)
        ours, openssh = stages.measure(
            self.servers[0], self.client, self.known_hosts, self.client_home, self.runs
        )
        self.stages = {"sops-deploy": ours, "openssh": openssh}

    # --- report ------------------------------------------------------------------------------

    def figures(self) -> dict[str, float]:
        return figures.figures(self.results, self.host_counts, self.link)

    def rows(self) -> list[dict[str, object]]:
        """The table's rows, as data (bench/table.py renders them)."""
        return figures.rows(self.results, self.host_counts, self.big_keys, self.link, TARGETS)

    def data(self) -> dict[str, object]:
        """The "bench" section of bench/results/<commit>.json."""
        return {
            "runs": self.runs,
            "host_counts": self.host_counts,
            "big_keys": self.big_keys,
            "figures": self.figures(),
            "targets": TARGETS,
            "rows": self.rows(),
            "stages": self.stages,
            "link": self.link,
            "timings": {
                k: {"median": v.median, "runs": v.runs, "max_rss_kib": v.max_rss_kib}
                for k, v in self.results.items()
            },
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--hosts", default="1,4,16,64", help="host counts for (d)")
    parser.add_argument("--big-keys", type=int, default=10_000)
    parser.add_argument(
        "--link-runs", type=int, default=3, help="runs per point of the slow-link sweep (0: skip)"
    )
    parser.add_argument("--link-rtts", default="0,10,40,100", help="round trips (ms) to sweep")
    parser.add_argument("--chart", default=str(chart.SVG), help="where the sweep's SVG goes")
    parser.add_argument(
        "--results", default=str(store.RESULTS), help="directory of <commit>.json results"
    )
    parser.add_argument(
        "--setup-runs", type=int, default=3, help="cold/warm action setups in act (0: skip)"
    )
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.hosts.split(",")]
    # An installed package carries compiled bytecode (pip compiles on install); an editable
    # checkout under PYTHONDONTWRITEBYTECODE would recompile every module on every run.
    import compileall

    compileall.compile_dir(str(REPO / "src"), quiet=1)
    with tempfile.TemporaryDirectory(prefix="sops-deploy-bench-") as tmp:
        rtts = tuple(int(x) for x in args.link_rtts.split(","))
        bench = Bench(Path(tmp), args.runs, counts, args.big_keys, args.link_runs, rtts)
        try:
            bench.setup()
            bench.run()
        finally:
            bench.stop()
        data = bench.data()
    path = store.save("bench", data, Path(args.results))
    print(table.bench_markdown(data))
    print(table.stages_markdown(data))
    print(table.link_markdown(data))
    if bench.link:
        chart.write(bench.link, Path(args.chart))
        print(f"wrote {args.chart}")
    # --- the action's setup, cold and warm in act (bench/setup_bench.py) ---
    if args.setup_runs > 0:
        from bench import setup_bench

        setup = setup_bench.measure_setup(args.setup_runs, str(Path(bench.sops).parent))
        path = store.save("setup", {"seconds": setup}, Path(args.results))
        print(setup_bench.markdown(setup))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
