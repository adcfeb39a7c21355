"""Fault injection against a real sshd through a TCP proxy: cut connections, stalls,
concurrent deploys, failing post-commands, retries and a jump host."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values

from sops_deploy.deploy.rollout import HostResult, Plan, apply_host
from sops_deploy.inputs.settings import HostSpec, Settings
from tests.proxy import Fault, Proxy
from tests.sshd import Sshd, free_port, keygen, make_sshd
from tests.support import CliResult, assert_no_secrets

Cli = Callable[..., CliResult]


@pytest.fixture
def proxy(sshd_server: Sshd) -> Iterator[Proxy]:
    """A fault-injecting proxy in front of the session sshd."""
    p = Proxy(sshd_server.port)
    yield p
    p.close()


def big_env(tag: str, size: int = 1 << 20) -> bytes:
    """A dotenv file of at least `size` bytes; every line differs with `tag`."""
    lines, total, i = [], 0, 0
    while total < size:
        line = f"KEY_{i:05d}={tag}-{i:05d}-{'x' * 60}\n"
        lines.append(line)
        total += len(line)
        i += 1
    return "".join(lines).encode()


def settings_via(sshd: Sshd, port: int, remote_dir: Path, **kw: object) -> Settings:
    """In-process settings that reach `sshd` on `port` (the proxy), pinned by fingerprint."""
    base: dict[str, object] = {
        "command": "deploy",
        "hosts": (HostSpec("127.0.0.1", port, sshd.user),),
        "remote_path": str(remote_dir / ".env"),
        "ssh_key": sshd.client_key.read_text(),
        "fingerprints": (sshd.fingerprint,),
        "retries": 0,
        "timeout": 10.0,
    }
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


def deploy(settings: Settings, content: bytes, warnings: list[str]) -> HostResult:
    plan = Plan({}, content, "dotenv")
    return apply_host(settings, plan, settings.hosts[0], "deploy", warnings.append)


def ours(remote_dir: Path) -> list[str]:
    """Temp and lock files of ours left in the directory."""
    return [p.name for p in remote_dir.iterdir() if ".sops-deploy." in p.name]


@pytest.mark.slow
def test_cut_at_24_points_leaves_old_or_new_file_whole(
    sshd_server: Sshd, proxy: Proxy, remote_dir: Path
) -> None:
    """Cutting the connection anywhere in a 1 MiB upload leaves the old or new file, 0600."""
    target = remote_dir / ".env"
    old, new = b"OLD_KEY=old-value-1\n", big_env("new")
    settings = settings_via(sshd_server, proxy.port, remote_dir)
    warnings: list[str] = []
    target.write_bytes(old)
    target.chmod(0o600)
    assert deploy(settings, new, warnings).status == "changed"
    total = proxy.upstream_bytes[-1]
    assert total > len(new)
    outcomes = []
    for i in range(1, 25):
        cut = total * i // 25
        target.write_bytes(old)
        target.chmod(0o600)
        proxy.faults.append(Fault(cut_after=cut))
        result = deploy(settings, new, warnings)
        data = target.read_bytes()
        assert data in (old, new), f"partial file after a cut at byte {cut} of {total}"
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        outcomes.append((cut, result.status, data == new))
        again = deploy(settings, new, warnings)
        assert again.status in ("changed", "unchanged"), again.error
        assert target.read_bytes() == new
        assert ours(remote_dir) == [], f"debris after recovering from a cut at {cut}"
    failed = [o for o in outcomes if o[1] == "failed"]
    assert len(failed) >= 20, outcomes  # the cuts really landed inside the deploy
    assert any(not o[2] for o in failed), "no cut left the old file"


def test_stalled_server_times_out_naming_host_and_port(
    cli: Cli, encrypt: Callable[..., Path], sshd_server: Sshd, proxy: Proxy, remote_dir: Path
) -> None:
    """A server that accepts but never answers fails with a timeout naming host and port."""
    proxy.faults.append(Fault(stall_after=0))
    result = cli(
        "deploy",
        "--file",
        str(encrypt("STALL_KEY=stall-value-1\n")),
        "--host",
        f"{sshd_server.user}@127.0.0.1:{proxy.port}",
        "--remote-path",
        str(remote_dir / ".env"),
        "--host-key-fingerprint",
        sshd_server.fingerprint,
        "--timeout",
        "2",
        "--retries",
        "0",
    )
    assert result.returncode == 1
    assert f"timed out: no SSH answer from 127.0.0.1 port {proxy.port}" in result.stderr
    assert "--timeout" in result.stderr
    assert list(remote_dir.iterdir()) == []


@pytest.mark.slow
def test_stall_mid_upload_times_out_and_keeps_old_file(
    sshd_server: Sshd, proxy: Proxy, remote_dir: Path
) -> None:
    """A stall in the middle of the upload times out with a clear message; old file kept."""
    target = remote_dir / ".env"
    old, new = b"OLD_KEY=old-value-1\n", big_env("stall")
    target.write_bytes(old)
    target.chmod(0o600)
    probe = settings_via(sshd_server, proxy.port, remote_dir, backup=0)
    assert deploy(probe, new, []).status == "changed"
    total = proxy.upstream_bytes[-1]
    target.write_bytes(old)
    proxy.faults.append(Fault(stall_after=total // 2))
    result = deploy(settings_via(sshd_server, proxy.port, remote_dir, timeout=2.0), new, [])
    assert result.status == "failed"
    assert result.error is not None
    assert "timed out" in result.error.message
    assert target.read_bytes() == old


def test_retries_reconnect_but_never_repeat_a_started_write(
    sshd_server: Sshd, proxy: Proxy, remote_dir: Path
) -> None:
    """A refused first connection is retried with backoff; a cut mid-write is not retried."""
    warnings: list[str] = []
    proxy.faults.append(Fault(cut_after=0))
    settings = settings_via(sshd_server, proxy.port, remote_dir, retries=2)
    result = deploy(settings, b"RETRY_KEY=retry-value-1\n", warnings)
    assert result.status == "changed", result.error
    assert proxy.connections == 2
    assert any("retry 1/2 in 1s" in w for w in warnings)

    no_retry = deploy(settings_via(sshd_server, proxy.port, remote_dir), b"A=1\n", [])
    assert no_retry.status == "changed"
    before = proxy.connections
    proxy.faults.append(Fault(cut_after=0))
    failed = deploy(settings_via(sshd_server, proxy.port, remote_dir), b"A=2\n", [])
    assert failed.status == "failed"
    assert failed.error is not None
    assert "SSH handshake failed" in failed.error.message
    assert proxy.connections == before + 1

    big = big_env("retry")
    measure = deploy(settings, big, [])
    assert measure.status == "changed"
    total = proxy.upstream_bytes[-1]
    before = proxy.connections
    proxy.faults.append(Fault(cut_after=total * 2 // 3))
    cut = deploy(settings, big_env("other"), warnings)
    assert cut.status == "failed"
    assert proxy.connections == before + 1, "a started write was retried"
    assert (remote_dir / ".env").read_bytes() == big


@pytest.mark.slow
def test_eight_concurrent_deploys_serialize_on_the_lock(
    encrypt: Callable[..., Path],
    base_env: dict[str, str],
    target_args: list[str],
    remote_dir: Path,
    secret_values: set[str],
    tmp_path: Path,
) -> None:
    """8 CLI deploys at once all succeed one after another; the file is exactly one of them."""
    contents = [
        f"SHARED_KEY=concurrent-value-{i:02d}\nRUN_KEY=run-{i:02d}-abcd\n" for i in range(8)
    ]
    files = [encrypt(c, name=f"c{i}.env") for i, c in enumerate(contents)]
    wait = ["--lock-timeout", "240"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "sops_deploy", "deploy", "--file", str(f), *target_args, *wait],
            env=base_env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in files
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert_no_secrets(out + err, secret_values)
        assert p.returncode == 0, err
    final = dict(dotenv_values(remote_dir / ".env", interpolate=False))
    expected = [
        {"SHARED_KEY": f"concurrent-value-{i:02d}", "RUN_KEY": f"run-{i:02d}-abcd"}
        for i in range(8)
    ]
    assert final in expected
    lines = (remote_dir / ".env.deploy.log").read_text().splitlines()
    assert len(lines) == 8
    records = [json.loads(line) for line in lines]
    for r in records:
        assert r["result"] == "changed"
        assert len(r["sha256"]) == 64
        assert set(r) >= {"time", "actor", "commit", "run_url", "added", "removed", "changed"}
    import hashlib

    assert records[-1]["sha256"] == hashlib.sha256((remote_dir / ".env").read_bytes()).hexdigest()
    assert stat.S_IMODE((remote_dir / ".env.deploy.log").stat().st_mode) == 0o600
    assert ours(remote_dir) == []


def test_failing_post_command_restores_previous_bytes(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """A post-command that fails on the new file triggers a rollback and a second run."""
    target = remote_dir / ".env"
    old = b"LEGACY_FLAG=legacy-value-1\nKEEP=keep-value-1\n"
    target.write_bytes(old)
    target.chmod(0o640)
    command = 'echo "checking in $(pwd)"; grep -c LEGACY_FLAG .env'
    result = cli(
        "deploy",
        "--file",
        str(encrypt("KEEP=keep-value-2\nNEW_FLAG=new-value-2\n")),
        *target_args,
        "--file-mode",
        "0600",
        "--post-command",
        command,
    )
    assert result.returncode == 1
    assert target.read_bytes() == old
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert "post-command: exit 1" in result.stderr
    assert "post-command after rollback: exit 0" in result.stderr
    assert f"checking in {remote_dir}" in result.stderr
    assert "restored the previous file" in result.stderr
    audit = json.loads((remote_dir / ".env.deploy.log").read_text().splitlines()[-1])
    assert audit["result"] == "rolled-back"
    assert [r["exit"] for r in audit["post_command"]] == [1, 0]
    assert ours(remote_dir) == []


def test_post_command_without_rollback_keeps_new_file(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """--no-rollback-on-failure leaves the new file and still exits 1."""
    (remote_dir / ".env").write_bytes(b"OLD=old-value-1\n")
    result = cli(
        "deploy",
        "--file",
        str(encrypt("NEW=new-value-3\n")),
        *target_args,
        "--post-command",
        "exit 7",
        "--no-rollback-on-failure",
    )
    assert result.returncode == 1
    assert "post-command: exit 7" in result.stderr
    assert "stays in place" in result.stderr
    assert b"NEW=" in (remote_dir / ".env").read_bytes()


def test_post_command_output_is_masked(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """A post-command that prints the secrets shows its last lines with values masked."""
    result = cli(
        "deploy",
        "--file",
        str(encrypt("PRINTED_KEY=printed-secret-value\n")),
        *target_args,
        "--post-command",
        "cat .env; echo done-marker",
    )
    assert result.returncode == 0, result.stderr
    assert "post-command: exit 0" in result.stderr
    assert "| done-marker" in result.stderr
    printed = [ln for ln in result.stderr.splitlines() if "| PRINTED_KEY=" in ln]
    assert printed, result.stderr
    assert "***" in printed[0]


@pytest.fixture
def jump_sshd(tmp_path: Path, sshd_server: Sshd) -> Iterator[Sshd]:
    """A second real sshd, accepting the same client key, to act as the bastion."""
    server = make_sshd(tmp_path / "jump", client_key=sshd_server.client_key)
    yield server
    server.stop()


def test_jump_host_carries_the_deploy_and_is_verified(
    cli: Cli,
    encrypt: Callable[..., Path],
    sshd_server: Sshd,
    jump_sshd: Sshd,
    remote_dir: Path,
    tmp_path: Path,
) -> None:
    """--jump-host tunnels through the bastion (all bytes pass it); its key is checked too."""
    bastion = Proxy(jump_sshd.port)
    try:
        jump_line = jump_sshd.known_hosts_line.replace(str(jump_sshd.port), str(bastion.port), 1)
        known = tmp_path / "kh_jump"
        known.write_text(sshd_server.known_hosts_line + "\n" + jump_line + "\n")
        content = "JUMP_KEY=through-the-bastion\nPAD=" + "p" * 50_000 + "\n"
        args = [
            "deploy",
            "--file",
            str(encrypt(content)),
            "--host",
            sshd_server.host,
            "--remote-path",
            str(remote_dir / ".env"),
            "--jump-host",
            f"{jump_sshd.user}@127.0.0.1:{bastion.port}",
        ]
        result = cli(*args, "--known-hosts", str(known))
        assert result.returncode == 0, result.stderr
        assert dotenv_values(remote_dir / ".env")["JUMP_KEY"] == "through-the-bastion"
        assert bastion.connections == 1
        assert bastion.upstream_bytes[0] > 50_000, "the upload did not pass the jump host"

        only_target = tmp_path / "kh_target_only"
        only_target.write_text(sshd_server.known_hosts_line + "\n")
        refused = cli(*args, "--known-hosts", str(only_target))
        assert refused.returncode == 1
        assert f"127.0.0.1:{bastion.port}: unknown host key" in refused.stderr
        assert jump_sshd.fingerprint in refused.stderr
    finally:
        bastion.close()


def test_jump_host_that_cannot_reach_target_says_so(
    cli: Cli,
    encrypt: Callable[..., Path],
    sshd_server: Sshd,
    remote_dir: Path,
    tmp_path: Path,
) -> None:
    """A bastion that may not forward to the target fails naming the tunnel and the fix."""
    server = make_sshd(
        tmp_path / "jump2", client_key=sshd_server.client_key, extra_config="PermitOpen none\n"
    )
    try:
        known = tmp_path / "kh2"
        known.write_text(sshd_server.known_hosts_line + "\n" + server.known_hosts_line + "\n")
        result = cli(
            "deploy",
            "--file",
            str(encrypt("NOPE_KEY=never-arrives-1\n")),
            "--host",
            sshd_server.host,
            "--remote-path",
            str(remote_dir / ".env"),
            "--known-hosts",
            str(known),
            "--jump-host",
            f"127.0.0.1:{server.port}",
            "--retries",
            "0",
        )
    finally:
        server.stop()
    assert result.returncode == 1
    assert "could not open a tunnel" in result.stderr
    assert "AllowTcpForwarding" in result.stderr
    assert not os.listdir(remote_dir)


def test_post_command_timeout_counts_as_failure_and_rolls_back(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """A post-command that outlives --post-command-timeout fails, rolls back, and says so."""
    target = remote_dir / ".env"
    old = b"OLD=old-value-1\n"
    target.write_bytes(old)
    target.chmod(0o600)
    result = cli(
        "deploy",
        "--file",
        str(encrypt("NEW=new-value-4\n")),
        *target_args,
        "--post-command",
        'if grep -q NEW .env; then sleep 30; fi; echo "old file is fine"',
        "--post-command-timeout",
        "3",  # room for the rollback's own post-command on a loaded 2-core CI machine
    )
    assert result.returncode == 1
    assert "post-command: timed out after 3s" in result.stderr
    assert "post-command after rollback: exit 0" in result.stderr
    assert target.read_bytes() == old


def _gated_sops(tmp_path: Path, sops_bin: str, marker: Path) -> Path:
    """A sops that decrypts only once `marker` exists (at most 20 s), else fails."""
    wrapper = tmp_path / "gated-sops"
    wrapper.write_text(
        "#!/bin/sh\n"
        "i=0\n"
        f"while [ ! -e {marker} ]; do\n"
        "  i=$((i + 1)); [ $i -gt 200 ] && { echo 'no SSH connection while decrypting' >&2;"
        " exit 99; }\n"
        "  sleep 0.1\n"
        "done\n"
        f'exec {sops_bin} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def _mark_on_connect(proxy: Proxy, marker: Path) -> threading.Thread:
    def watch() -> None:
        deadline = time.monotonic() + 30
        while proxy.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        marker.touch()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_ssh_connects_while_sops_decrypts(
    cli: Cli,
    encrypt: Callable[..., Path],
    sshd_server: Sshd,
    proxy: Proxy,
    remote_dir: Path,
    sops_bin: str,
    tmp_path: Path,
) -> None:
    """The connection is opened during decryption, as `sops -d | ssh` does: this sops
    waits for a connection to reach the server before it decrypts anything."""
    marker = tmp_path / "connected"
    watcher = _mark_on_connect(proxy, marker)
    result = cli(
        "deploy",
        "--file",
        str(encrypt("OVERLAP_KEY=overlap-value-1\n")),
        "--host",
        f"{sshd_server.user}@127.0.0.1:{proxy.port}",
        "--remote-path",
        str(remote_dir / ".env"),
        "--host-key-fingerprint",
        sshd_server.fingerprint,
        env={"SOPS_DEPLOY_SOPS": str(_gated_sops(tmp_path, sops_bin, marker))},
    )
    watcher.join()
    assert result.returncode == 0, result.output
    assert (remote_dir / ".env").read_text() == "OVERLAP_KEY='overlap-value-1'\n"


def test_invalid_secrets_while_connecting_write_nothing_and_stop_retries(
    cli: Cli, encrypt: Callable[..., Path], sshd_server: Sshd, remote_dir: Path
) -> None:
    """Validation fails (exit 4) while an unreachable host is in its retry backoff: the
    retries stop at once, the reachable host gets nothing, and the error is the plan's."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    result = cli(
        "deploy",
        "--file",
        str(encrypt("lower-case key=value\nOTHER=fine-value-1\n")),
        "--host",
        sshd_server.host,
        "--host",
        f"{sshd_server.user}@127.0.0.1:{dead_port}",
        "--remote-path",
        str(remote_dir / ".env"),
        "--host-key-fingerprint",
        sshd_server.fingerprint,
        "--retries",
        "5",
    )
    assert result.returncode == 4, result.output
    assert "invalid-key" in result.stderr or "syntax" in result.stderr
    assert list(remote_dir.iterdir()) == []
    # the backoff is 1 s, 2 s, 4 s, ...: decrypting and validating end within the first
    assert "retry 1/5" in result.stderr
    assert "retry 3/5" not in result.stderr


def test_retries_wait_their_backoff_for_a_server_that_starts_late(
    cli: Cli, encrypt: Callable[..., Path], sshd_server: Sshd, remote_dir: Path, tmp_path: Path
) -> None:
    """--retries 3 waits the 1 s, 2 s … it announces: a real sshd that starts listening
    1.5 s after the deploy's first attempt (refused) still gets the file."""
    root = tmp_path / "late"
    root.mkdir()
    host_key = root / "ssh_host_ed25519_key"
    keygen(host_key)
    late = Sshd(root, free_port(), sshd_server.user, sshd_server.client_key, host_key)
    listener = socket.create_server(("127.0.0.1", late.port))
    listener.settimeout(60)

    def refuse_once_then_start() -> None:
        try:
            first, _ = listener.accept()  # the deploy's first attempt: closed unanswered
            first.close()
        finally:
            listener.close()
        time.sleep(1.5)
        late.start()

    starter = threading.Thread(target=refuse_once_then_start, daemon=True)
    starter.start()
    try:
        result = cli(
            "deploy",
            "--file",
            str(encrypt("LATE_KEY=late-value-1\n")),
            "--host",
            late.host,
            "--remote-path",
            str(remote_dir / ".env"),
            "--host-key-fingerprint",
            late.fingerprint,
            "--retries",
            "3",
        )
        starter.join(timeout=30)
    finally:
        late.stop()
    assert result.returncode == 0, result.output
    assert "retry 1/3 in 1s" in result.stderr
    assert dotenv_values(remote_dir / ".env") == {"LATE_KEY": "late-value-1"}


def _slow_sops(tmp_path: Path, sops_bin: str, seconds: float) -> Path:
    """The real sops, started `seconds` late: the hosts are connected well before the
    plan is known."""
    wrapper = tmp_path / "slow-sops"
    wrapper.write_text(f'#!/bin/sh\nsleep {seconds}\nexec {sops_bin} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def _snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    """The directory's mtime and every entry's mtime and bytes."""
    shot = {".": (directory.stat().st_mtime_ns, b"")}
    for p in directory.iterdir():
        shot[p.name] = (p.lstat().st_mtime_ns, p.read_bytes())
    return shot


def test_invalid_secrets_leave_the_server_directory_untouched(
    cli: Cli,
    encrypt: Callable[..., Path],
    target_args: list[str],
    remote_dir: Path,
    sops_bin: str,
    tmp_path: Path,
) -> None:
    """A validation failure (exit 4) while the host is connected creates nothing there:
    no lock, no temp file, no audit line — the directory's mtime and contents are as before."""
    (remote_dir / ".env").write_text("OLD_KEY=old-value-1\n")
    (remote_dir / ".env").chmod(0o600)
    before = _snapshot(remote_dir)
    result = cli(
        "deploy",
        "--file",
        str(encrypt("lower-case key=value\nOTHER=fine-value-1\n")),
        *target_args,
        env={"SOPS_DEPLOY_SOPS": str(_slow_sops(tmp_path, sops_bin, 1.5))},
    )
    assert result.returncode == 4, result.output
    assert _snapshot(remote_dir) == before


def test_held_lock_does_not_delay_a_validation_error(
    cli: Cli,
    encrypt: Callable[..., Path],
    target_args: list[str],
    remote_dir: Path,
    sops_bin: str,
    tmp_path: Path,
) -> None:
    """With another deploy holding the lock and --lock-timeout 60, bad secrets exit 4
    without waiting for the lock (the run is cut at 30 s), and the holder's lock stays."""
    lock = remote_dir / ".env.sops-deploy.lock"
    lock.write_text(json.dumps({"user": "ci", "host": "other-runner", "pid": 4242}))
    lock.chmod(0o600)
    held = (lock.stat().st_mtime_ns, lock.read_bytes())
    result = cli(
        "deploy",
        "--file",
        str(encrypt("lower-case key=value\nOTHER=fine-value-2\n")),
        *target_args,
        "--lock-timeout",
        "60",
        env={"SOPS_DEPLOY_SOPS": str(_slow_sops(tmp_path, sops_bin, 1.0))},
        timeout=30,  # the guard: far less than --lock-timeout
    )
    assert result.returncode == 4, result.output
    assert (lock.stat().st_mtime_ns, lock.read_bytes()) == held
    assert "is held by" not in result.stderr
