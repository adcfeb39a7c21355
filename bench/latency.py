"""Deploys over a slow link: a latency-injecting TCP proxy in front of each bench sshd, and
the sweep of round-trip times that `make bench` reports (ours against the raw pipeline).

`DelayProxy` forwards 127.0.0.1:port to a server and delivers every chunk, in each
direction, `delay` seconds after it arrived — a one-way delay, as a long link has, with
everything in flight pipelined (tests/proxy.py sleeps in its one thread per connection,
which serialises a burst: fine for faults, wrong for a link). A round trip costs 2·delay.

`sweep` runs, per round-trip time (0, 10, 40, 100 ms) and for 1 and 16 hosts (each behind
its own proxy): a 50-key changed deploy by sops-deploy, and the raw pipeline (`sops
decrypt F | ssh HOST 'umask 077; cat > P.tmp && mv P.tmp P'`, clean HOME; for 16 hosts
`xargs -P 16` of it). The slope of time against round-trip time is the number of round
trips each side waits for: printed for both.
"""

from __future__ import annotations

import contextlib
import heapq
import shlex
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.timing import measure, random_env, run_timed

if TYPE_CHECKING:
    from bench.bench import Bench

RTTS_MS = (0, 10, 40, 100)
HOSTS = (1, 16)


class DelayProxy:
    """127.0.0.1:`port` → 127.0.0.1:`target_port`, each chunk delivered `delay` s later."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.delay = 0.0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.settimeout(None)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            done = threading.Semaphore(0)
            self._pump(client, upstream, done)
            self._pump(upstream, client, done)
            threading.Thread(target=_close_when_done, args=(done, client, upstream)).start()

    def _pump(self, src: socket.socket, dst: socket.socket, done: threading.Semaphore) -> None:
        """Read `src` as it comes; deliver each chunk to `dst` once its delay has passed."""
        queue: list[tuple[float, int, bytes]] = []
        ready = threading.Condition()
        seq = 0

        def reader() -> None:
            nonlocal seq
            while True:
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                with ready:
                    heapq.heappush(queue, (time.monotonic() + self.delay, seq, data))
                    seq += 1
                    ready.notify()
                if not data:
                    return

        def writer() -> None:
            while True:
                with ready:
                    while not queue:
                        ready.wait()
                    due, _, data = queue[0]
                    wait = due - time.monotonic()
                    if wait > 0:
                        ready.wait(wait)
                        continue
                    heapq.heappop(queue)
                if not data:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    done.release()
                    return
                try:
                    dst.sendall(data)
                except OSError:
                    done.release()
                    return

        threading.Thread(target=reader, daemon=True).start()
        threading.Thread(target=writer, daemon=True).start()


def _close_when_done(done: threading.Semaphore, *socks: socket.socket) -> None:
    for _ in socks:
        done.acquire()
    for s in socks:
        s.close()


def sweep(bench: Bench, runs: int, rtts: tuple[int, ...] = RTTS_MS) -> dict[str, Any]:
    """Per RTT and host count: our median, the raw pipeline's, and their ratio (16 hosts:
    as many as the bench started, when fewer)."""
    hosts = sorted({min(n, len(bench.servers)) for n in HOSTS})
    proxies = [DelayProxy(s.port) for s in bench.servers[: max(hosts)]]
    known = bench.root / "known_hosts_proxied"
    known.write_text(
        "".join(
            f"[127.0.0.1]:{p.port} {s.known_hosts_line.split(' ', 1)[1]}\n"
            for p, s in zip(proxies, bench.servers, strict=False)
        )
    )
    files = [bench.encrypt(random_env(50, seed), f"link{seed}") for seed in (7, 8)]
    out: dict[str, Any] = {"rtts_ms": list(rtts), "hosts": hosts, "points": []}
    try:
        for rtt in rtts:
            for p in proxies:
                p.delay = rtt / 2000
            for n in hosts:
                ours = measure(_ours(bench, files, proxies[:n], known), runs)
                raw = measure(_raw(bench, files, proxies[:n], known, n), runs)
                out["points"].append(
                    {
                        "rtt_ms": rtt,
                        "hosts": n,
                        "ours": ours.median,
                        "raw": raw.median,
                        "ratio": ours.median / raw.median,
                    }
                )
                ratio = ours.median / raw.median
                print(f"  rtt {rtt:3d} ms, {n:2d} hosts: ours {ours.median:.3f} s, "
                      f"raw {raw.median:.3f} s, {ratio:.2f}×", flush=True)  # fmt: skip
    finally:
        for p in proxies:
            p.close()
    out["round_trips"] = round_trips(out["points"])
    return out


def round_trips(points: list[dict[str, Any]]) -> dict[str, float]:
    """Round trips waited for per one-host deploy: the slope of time against RTT."""
    one = sorted((p for p in points if p["hosts"] == 1), key=lambda p: p["rtt_ms"])
    lo, hi = one[0], one[-1]
    span = (hi["rtt_ms"] - lo["rtt_ms"]) / 1000
    return {k: (hi[k] - lo[k]) / span for k in ("ours", "raw")}


def _ours(
    bench: Bench, files: list[Path], proxies: list[DelayProxy], known: Path
) -> Callable[[int], tuple[float, int]]:
    from bench.bench import CLI
    from tests.support import target_flags

    user = bench.servers[0].user
    hosts = [f"{user}@127.0.0.1:{p.port}" for p in proxies]
    flags = target_flags(hosts, "~/.env", known)
    parallel = ["--parallel", str(len(hosts))]
    argv = lambda f: [CLI, "deploy", "--file", str(f), *flags, *parallel]  # noqa: E731
    return lambda i: run_timed(argv(files[i % 2]), bench.env)


def _raw(
    bench: Bench, files: list[Path], proxies: list[DelayProxy], known: Path, n: int
) -> Callable[[int], tuple[float, int]]:
    def pipeline(f: Path, i: int) -> str:
        path = shlex.quote(bench.srv_path(i))
        argv = bench.ssh_argv(i)
        argv[argv.index("-p") + 1] = str(proxies[i].port)
        argv = [a.replace(str(bench.known_hosts), str(known)) for a in argv]
        remote = f"umask 077; cat > {path}.tmp && mv {path}.tmp {path}"
        return f"{bench.decrypt_cmd(f)} | {shlex.join([*argv, remote])}"

    def cmd(i: int) -> str:
        f = files[i % 2]
        if n == 1:
            return pipeline(f, 0)
        listing = bench.root / f"link-cmds-{n}-{i % 2}.txt"
        listing.write_text("\0".join(pipeline(f, j) for j in range(n)))
        return f"xargs -0 -P {n} -I CMD bash --norc -c CMD < {shlex.quote(str(listing))}"

    return lambda i: run_timed([cmd(i)], bench.sops_env, shell=True)
