"""The audit log stays bounded, against a real sshd: a line names at most MAX_NAMES keys per
list (with the totals), and a full log is rotated to `.1` before the next line."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

from sops_deploy.remote.audit import MAX_LOG_BYTES, MAX_NAMES
from tests.support import CliResult

Cli = Callable[..., CliResult]


def test_many_changed_keys_are_counted_not_all_named(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    keys = MAX_NAMES * 2 + 50
    (remote_dir / ".env").write_text("GONE_KEY=gone-value-1\n")
    plain = "".join(f"KEY_{i:04d}=value-{i:04d}-x\n" for i in range(keys))
    result = cli("deploy", "--file", str(encrypt(plain)), *target_args)
    assert result.returncode == 0, result.stderr
    (line,) = (remote_dir / ".env.deploy.log").read_text().splitlines()
    record = json.loads(line)
    assert record["added"] == [f"KEY_{i:04d}" for i in range(MAX_NAMES)]
    assert record["added_count"] == keys
    assert (record["removed"], record["removed_count"]) == (["GONE_KEY"], 1)
    assert (record["changed"], record["changed_count"]) == ([], 0)
    assert len(line) < 40 * MAX_NAMES  # not ~30 bytes for each of the keys


def test_a_full_log_is_rotated_before_the_next_line(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    log = remote_dir / ".env.deploy.log"
    old = '{"result": "changed"}\n' * (MAX_LOG_BYTES // 22 + 1)
    log.write_text(old)
    log.chmod(0o600)
    result = cli("deploy", "--file", str(encrypt("A_KEY=value-one-1\n")), *target_args)
    assert result.returncode == 0, result.stderr
    assert (remote_dir / ".env.deploy.log.1").read_text() == old
    (line,) = log.read_text().splitlines()
    assert json.loads(line)["added"] == ["A_KEY"]
    assert stat.S_IMODE(log.stat().st_mode) == 0o600

    # Below the size, the next deploy appends to the same log and rotates nothing.
    result = cli("deploy", "--file", str(encrypt("A_KEY=value-two-2\n")), *target_args)
    assert result.returncode == 0, result.stderr
    assert len(log.read_text().splitlines()) == 2
    assert (remote_dir / ".env.deploy.log.1").read_text() == old
