"""Taking over a dead deploy's lock is atomic: over a slow link, many deploys that all
find the same stale lock still run one at a time (exactly one takes the stale lock over)."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values

from tests.proxy import Proxy
from tests.sshd import Sshd
from tests.support import deploy_at_once

CONTENDERS = 8
LATENCY = 0.05  # seconds per chunk and direction: a round trip of 100 ms or more
POST = 'echo "start $$" >> post.log; sleep 0.3; echo "end $$" >> post.log'


@pytest.fixture
def slow_link(sshd_server: Sshd) -> Iterator[Proxy]:
    proxy = Proxy(sshd_server.port, latency=LATENCY)
    yield proxy
    proxy.close()


def plant_dead_lock(remote_dir: Path) -> Path:
    """The lock of a deploy that died an hour ago on another runner."""
    lock = remote_dir / ".env.sops-deploy.lock"
    holder = {"user": "ghost", "host": "gone-runner", "pid": 4242, "token": "dead00c0ffee"}
    lock.write_text(json.dumps(holder))
    hour_ago = time.time() - 3600
    os.utime(lock, (hour_ago, hour_ago))
    return lock


def assert_never_overlapped(log: Path, runs: int) -> None:
    """post.log holds `start N` / `end N` pairs, one run at a time."""
    lines = log.read_text().splitlines()
    assert len(lines) == 2 * runs, lines
    for start, end in zip(lines[::2], lines[1::2], strict=True):
        assert start.startswith("start "), lines
        assert end == "end " + start.removeprefix("start "), lines


@pytest.mark.slow
def test_concurrent_deploys_take_over_a_dead_lock_once_and_never_overlap(
    encrypt: Callable[..., Path],
    base_env: dict[str, str],
    sshd_server: Sshd,
    slow_link: Proxy,
    remote_dir: Path,
    secret_values: set[str],
    tmp_path: Path,
) -> None:
    """8 deploys over a 100 ms link against a dead holder's lock: one takeover, the
    post-commands never overlap, the file is one of the versions, whole."""
    plant_dead_lock(remote_dir)
    versions = [f"RACE_KEY=race-value-{i:02d}\nPAD={'p' * 200}{i:02d}\n" for i in range(CONTENDERS)]
    files = [encrypt(v, name=f"race{i}.env") for i, v in enumerate(versions)]
    target = [
        "--host",
        f"{sshd_server.user}@127.0.0.1:{slow_link.port}",
        "--remote-path",
        str(remote_dir / ".env"),
        "--host-key-fingerprint",
        sshd_server.fingerprint,
        "--lock-timeout",
        "600",
        "--post-command",
        POST,
    ]
    outputs = deploy_at_once(files, target, base_env, tmp_path, secret_values, timeout=600)
    takeovers = sum(err.count("taking over the stale lock") for _, err in outputs)
    assert takeovers == 1, [err for _, err in outputs]
    assert_never_overlapped(remote_dir / "post.log", CONTENDERS)
    final = dict(dotenv_values(remote_dir / ".env", interpolate=False))
    expected = [dict(dotenv_values(stream=io.StringIO(v), interpolate=False)) for v in versions]
    assert final in expected
    audit = (remote_dir / ".env.deploy.log").read_text().splitlines()
    assert len(audit) == CONTENDERS
    assert sorted(p.name for p in remote_dir.iterdir() if ".sops-deploy." in p.name) == []
