"""The `go install` fallback for a tool, with progress: it can take minutes on a cold cache.

`go install -v` names each package as it compiles and `go: downloading …` each module it
fetches; a reader thread counts those lines, and every few seconds the caller hears how
long the build has run and how far it got. A signal or any failure kills the build and
removes its temporary GOBIN, so nothing half-built reaches the cache.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from sops_deploy.errors import ToolError

PROGRESS_EVERY = 5.0  # seconds between "still building" lines


def build(
    go: str,
    packages: list[str],
    names: tuple[str, ...],
    target_dir: Path,
    env: Mapping[str, str],
    say: Callable[[str], None],
    every: float = PROGRESS_EVERY,
) -> None:
    """`go install packages` into a temporary GOBIN, then move `names` into `target_dir`."""
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_dir.parent, prefix=".go-") as gobin:
        child_env = {**env, "GOBIN": gobin, "CGO_ENABLED": "0", "GOFLAGS": "-trimpath"}
        proc = subprocess.Popen(
            [go, "install", "-v", *packages],
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=gobin,
        )
        counts = {"compiled": 0, "downloaded": 0}
        tail: list[str] = []
        reader = threading.Thread(target=_read, args=(proc, counts, tail), daemon=True)
        reader.start()
        started = time.monotonic()
        try:
            while True:
                try:
                    proc.wait(timeout=every)
                    break
                except subprocess.TimeoutExpired:
                    say(
                        f"  … {time.monotonic() - started:.0f} s: {counts['downloaded']} "
                        f"module(s) downloaded, {counts['compiled']} package(s) compiled"
                    )
        finally:
            if proc.poll() is None:  # interrupted: stop the build before the clean-up
                proc.kill()
                proc.wait()
            reader.join(timeout=5)
        if proc.returncode != 0:
            raise ToolError(
                f"`go install {' '.join(packages)}` failed: {''.join(tail).strip()[-500:]}",
                "check the version exists and the Go module proxy is reachable",
            )
        for name in names:
            os.replace(Path(gobin) / name, target_dir / name)
    say(f"  built in {time.monotonic() - started:.0f} s")


def _read(proc: subprocess.Popen[str], counts: dict[str, int], tail: list[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("go: downloading "):
            counts["downloaded"] += 1
        elif line.strip() and not line.startswith(("go: ", "#")):
            counts["compiled"] += 1
        tail.append(line)
        del tail[:-20]
