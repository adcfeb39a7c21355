"""`make bench`: sops-deploy against the raw OpenSSH pipeline, side by side, in one run.

Every figure is a median of N timed runs after a warm-up, against local sshd instances on
127.0.0.1, and is printed as a ratio to a baseline measured in the same run:

  (a) baseline  `sops -d FILE | ssh HOST 'umask 077; cat > P.tmp && mv P.tmp P'`
  (b) `sops-deploy deploy` that changes the file      → (b)/(a)
  (c) the unchanged rerun                             → (c)/(a)
  (d) fan-out to 1, 4, 16, 32 hosts (ratio to 1 host), beside the baseline as a loop
      and as `xargs -P`
  (e) a 10,000-key (~1 MiB) file through (a) and (b)  → (e)b/(e)a
  (f) CLI start `sops-deploy --version` against `python3 -c pass`
  (g) peak RSS of (b) and (e)

Writes bench/results.json (for comparing commits) and bench/results.md (the table).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "src"))

from sshd import Sshd, make_sshd  # noqa: E402

from sops_deploy import tools  # noqa: E402
from sops_deploy.environment import tool_places  # noqa: E402

# The installed console script, as users run it.
CLI = str(Path(sys.executable).parent / "sops-deploy")

TARGETS = {
    "b/a": 1.5,
    "c/a": 1.3,
    "hosts16/hosts1": 2.5,
    "hosts32/hosts1": 4.0,
    "e_b/e_a": 1.5,
    "version/python": 4.0,
    "rss_e_mib": 100.0,
}


@dataclass
class Timing:
    median: float
    runs: list[float]
    max_rss_kib: int = 0


def run_timed(argv: list[str], env: dict[str, str], *, shell: bool = False) -> tuple[float, int]:
    """Wall time and peak RSS (KiB) of one command; raises if it fails."""
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
    if proc.returncode != 0:
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


class Bench:
    def __init__(self, root: Path, runs: int, host_counts: list[int], big_keys: int) -> None:
        self.root = root
        self.runs = runs
        self.host_counts = host_counts
        self.big_keys = big_keys
        self.sops = tools.find_sops(tool_places(os.environ))
        self.servers: list[Sshd] = []
        self.results: dict[str, Timing] = {}

    # --- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        keyfile = self.root / "age.txt"
        subprocess.run(["age-keygen", "-o", str(keyfile)], check=True, capture_output=True)
        self.recipient = subprocess.run(
            ["age-keygen", "-y", str(keyfile)], check=True, capture_output=True, text=True
        ).stdout.strip()
        self.age_key = keyfile.read_text()
        self.small = [self.encrypt(random_env(20, seed), f"small{seed}") for seed in (1, 2)]
        self.big = [self.encrypt(random_env(self.big_keys, seed), f"big{seed}") for seed in (3, 4)]
        client = self.root / "client_ed25519"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client)], check=True
        )
        self.client = client
        known = []
        for i in range(max(self.host_counts)):
            srv_dir = self.root / f"srv{i}"
            srv_dir.mkdir()
            server = make_sshd(self.root / f"sshd{i}", client_key=client, sftp_args=f"-d {srv_dir}")
            self.servers.append(server)
            known.append(server.known_hosts_line)
        self.known_hosts = self.root / "known_hosts"
        self.known_hosts.write_text("\n".join(known) + "\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPS_", "GITHUB_"))}
        self.env.update(
            AGE_KEY=self.age_key, SSH_PRIVATE_KEY=client.read_text(), SOPS_DEPLOY_SOPS=self.sops
        )
        self.sops_env = {**self.env, "SOPS_AGE_KEY": self.age_key}

    def encrypt(self, plaintext: str, name: str) -> Path:
        plain = self.root / f"{name}.plain"
        plain.write_text(plaintext)
        out = self.root / f"{name}.env.encrypted"
        enc = subprocess.run(
            [
                self.sops,
                "encrypt",
                "--input-type",
                "dotenv",
                "--output-type",
                "dotenv",
                "--age",
                self.recipient,
                str(plain),
            ],
            check=True,
            capture_output=True,
        )
        out.write_bytes(enc.stdout)
        plain.unlink()
        return out

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    # --- the commands ----------------------------------------------------------------------

    def srv_path(self, i: int) -> str:
        return str(self.root / f"srv{i}" / ".env")

    def baseline_cmd(self, file: Path, i: int) -> str:
        s = self.servers[i]
        path = self.srv_path(i)
        remote = (
            f"umask 077; cat > {shlex.quote(path)}.tmp && mv {shlex.quote(path)}.tmp "
            f"{shlex.quote(path)}"
        )
        ssh = (
            f"ssh -i {self.client} -p {s.port} -o BatchMode=yes "
            f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes "
            f"{s.user}@127.0.0.1 {shlex.quote(remote)}"
        )
        return (
            f"{shlex.quote(self.sops)} decrypt --input-type dotenv --output-type dotenv "
            f"{shlex.quote(str(file))} | {ssh}"
        )

    def deploy_argv(self, file: Path, hosts: int) -> list[str]:
        argv = [
            CLI,
            "deploy",
            "--file",
            str(file),
            "--remote-path",
            "~/.env",
            "--known-hosts",
            str(self.known_hosts),
            "--parallel",
            str(max(hosts, 1)),
        ]
        for s in self.servers[:hosts]:
            argv += ["--host", s.host]
        return argv

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
            loop = " && ".join(f"( {self.baseline_cmd(small[0], j)} )" for j in range(n))
            r[f"loop{n}"] = measure(
                lambda i, loop=loop: run_timed([loop], self.sops_env, shell=True), self.runs
            )
            cmds = self.root / f"cmds{n}.txt"
            cmds.write_text("\0".join(self.baseline_cmd(small[0], j) for j in range(n)))
            xargs = f"xargs -0 -P {n} -I CMD bash -c CMD < {shlex.quote(str(cmds))}"
            r[f"xargs{n}"] = measure(
                lambda i, x=xargs: run_timed([x], self.sops_env, shell=True), self.runs
            )
        r["e_a"] = measure(
            lambda i: run_timed([self.baseline_cmd(big[i % 2], 0)], self.sops_env, shell=True),
            self.runs,
        )
        r["e_b"] = measure(lambda i: run_timed(self.deploy_argv(big[i % 2], 1), env), self.runs)
        r["version"] = measure(lambda i: run_timed([CLI, "--version"], env), self.runs)
        r["python"] = measure(lambda i: run_timed([sys.executable, "-c", "pass"], env), self.runs)

    # --- report ------------------------------------------------------------------------------

    def figures(self) -> dict[str, float]:
        r = self.results
        f = {
            "b/a": r["b"].median / r["a"].median,
            "c/a": r["c"].median / r["a"].median,
            "e_b/e_a": r["e_b"].median / r["e_a"].median,
            "version/python": r["version"].median / r["python"].median,
            "rss_b_mib": r["b"].max_rss_kib / 1024,
            "rss_e_mib": r["e_b"].max_rss_kib / 1024,
        }
        one = r[f"hosts{self.host_counts[0]}"].median
        for n in self.host_counts[1:]:
            f[f"hosts{n}/hosts{self.host_counts[0]}"] = r[f"hosts{n}"].median / one
        return f

    def markdown(self) -> str:
        r, f = self.results, self.figures()
        lines = [
            f"Medians of {self.runs} runs after a warm-up; ratios from the same run.",
            "",
            "| figure | sops-deploy | baseline | ratio | target | met |",
            "|---|---|---|---|---|---|",
        ]

        def row(name: str, ours: str, base: str, key: str) -> None:
            target = TARGETS.get(key)
            ratio = f[key]
            met = "–" if target is None else ("yes" if ratio <= target else "**no**")
            tgt = "–" if target is None else f"≤ {target:g}"
            lines.append(f"| {name} | {ours} | {base} | {ratio:.2f} | {tgt} | {met} |")

        ms = lambda k: f"{r[k].median * 1000:.0f} ms"  # noqa: E731
        row("(b) deploy, file changes", ms("b"), ms("a"), "b/a")
        row("(c) deploy, unchanged rerun", ms("c"), ms("a"), "c/a")
        first = self.host_counts[0]
        for n in self.host_counts[1:]:
            row(
                f"(d) {n} hosts vs {first} (loop {ms(f'loop{n}')}, xargs -P {ms(f'xargs{n}')})",
                ms(f"hosts{n}"),
                ms(f"hosts{first}"),
                f"hosts{n}/hosts{first}",
            )
        row(f"(e) {self.big_keys}-key file", ms("e_b"), ms("e_a"), "e_b/e_a")
        row(
            "(f) `sops-deploy --version` vs `python3 -c pass`",
            ms("version"),
            ms("python"),
            "version/python",
        )
        lines.append(f"| (g) peak RSS, deploy (b) | {f['rss_b_mib']:.1f} MiB | – | – | – | – |")
        met = "yes" if f["rss_e_mib"] <= TARGETS["rss_e_mib"] else "**no**"
        lines.append(
            f"| (g) peak RSS, {self.big_keys}-key deploy (e) | {f['rss_e_mib']:.1f} MiB "
            f"| – | – | ≤ 100 MiB | {met} |"
        )
        return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--hosts", default="1,4,16,32", help="host counts for (d)")
    parser.add_argument("--big-keys", type=int, default=10_000)
    parser.add_argument("--out", default=str(REPO / "bench"), help="where results.* go")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.hosts.split(",")]
    # An installed package carries compiled bytecode (pip compiles on install); an editable
    # checkout under PYTHONDONTWRITEBYTECODE would recompile every module on every run.
    import compileall

    compileall.compile_dir(str(REPO / "src"), quiet=1)
    with tempfile.TemporaryDirectory(prefix="sops-deploy-bench-") as tmp:
        bench = Bench(Path(tmp), args.runs, counts, args.big_keys)
        try:
            bench.setup()
            bench.run()
        finally:
            bench.stop()
        table = bench.markdown()
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        data = {
            "runs": args.runs,
            "host_counts": counts,
            "big_keys": args.big_keys,
            "figures": bench.figures(),
            "targets": TARGETS,
            "timings": {
                k: {"median": v.median, "runs": v.runs, "max_rss_kib": v.max_rss_kib}
                for k, v in bench.results.items()
            },
        }
        (out / "results.json").write_text(json.dumps(data, indent=2) + "\n")
        (out / "results.md").write_text(table)
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
