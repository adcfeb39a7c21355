"""Safe operations on a real sshd: backups, the remote lock, debris cleanup, the audit
trail, the owner a deploy chooses, symlinks, authentication and disk-full messages."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sops_deploy.inputs import runinfo
from sops_deploy.remote.lock import STALE_LOCK_SECONDS
from tests.sshd import keygen
from tests.support import CliResult

Cli = Callable[..., CliResult]


def env_text(i: int) -> str:
    return f"VERSION_KEY=version-value-{i:03d}\nSTABLE_KEY=stable-value-1\n"


def test_backups_keep_newest_n_and_are_reported(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path, tmp_path: Path
) -> None:
    """Each replace keeps the previous file as .bak.<UTC stamp> (0600); only N are kept."""
    outputs = tmp_path / "gh_output"
    for i in range(5):
        outputs.write_text("")
        result = cli(
            "deploy",
            "--file",
            str(encrypt(env_text(i), name=f"v{i}.env")),
            *target_args,
            "--backup",
            "2",
            env={"GITHUB_OUTPUT": str(outputs)},
        )
        assert result.returncode == 0, result.stderr
    backups = sorted(p for p in remote_dir.iterdir() if ".env.bak." in p.name)
    assert len(backups) == 2
    assert b"version-value-003" in backups[-1].read_bytes()
    assert b"version-value-002" in backups[0].read_bytes()
    for b in backups:
        assert stat.S_IMODE(b.stat().st_mode) == 0o600
    assert f"backup: {backups[-1]}" in result.stdout
    report_json = outputs.read_text().split("report<<", 1)[1].split("\n")[1]
    assert json.loads(report_json)[0]["backup"] == str(backups[-1])


def test_backup_of_a_private_file_is_a_hard_link_and_of_a_shared_one_a_private_copy(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """A 0600 file is kept by a hard link (no copy over the wire: the backup is the old
    inode); a 0644 one is uploaded again as a new 0600 file, and the old inode is gone."""
    target = remote_dir / ".env"
    for mode, linked in ((0o600, True), (0o644, False)):
        for old in remote_dir.iterdir():
            old.unlink()
        target.write_text("VERSION_KEY=old-value-1\n")
        target.chmod(mode)
        inode = target.stat().st_ino
        result = cli("deploy", "--file", str(encrypt(env_text(7))), *target_args)
        assert result.returncode == 0, result.stderr
        (backup,) = [p for p in remote_dir.iterdir() if ".env.bak." in p.name]
        assert backup.read_text() == "VERSION_KEY=old-value-1\n"
        assert stat.S_IMODE(backup.stat().st_mode) == 0o600
        assert (backup.stat().st_ino == inode) is linked
        assert target.stat().st_ino != inode
        assert b"version-value-007" in target.read_bytes()


def test_backup_zero_disables_backups(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """--backup 0 replaces the file without keeping the old one."""
    (remote_dir / ".env").write_text("OLD=old-value-1\n")
    result = cli("deploy", "--file", str(encrypt(env_text(1))), *target_args, "--backup", "0")
    assert result.returncode == 0, result.stderr
    assert not [p for p in remote_dir.iterdir() if ".bak." in p.name]


def write_lock(remote_dir: Path, **holder: object) -> Path:
    lock = remote_dir / ".env.sops-deploy.lock"
    lock.write_text(json.dumps(holder))
    lock.chmod(0o600)
    return lock


def test_held_lock_makes_deploy_wait_then_fail_naming_holder(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """A live lock of another machine blocks the deploy, which fails naming the holder."""
    write_lock(remote_dir, user="ci", host="other-runner", pid=4242, run_id="99", time="2026-01-01")
    result = cli("deploy", "--file", str(encrypt(env_text(1))), *target_args, "--lock-timeout", "1")
    assert result.returncode == 1
    assert "is held by ci@other-runner pid 4242, GitHub run 99" in result.stderr
    assert "--lock-timeout" in result.stderr
    assert not (remote_dir / ".env").exists()
    assert (remote_dir / ".env.sops-deploy.lock").exists(), "someone else's lock was removed"


def test_stale_lock_is_taken_over_with_a_warning(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """A lock older than the stale limit is taken over, warned about, and released after."""
    lock = write_lock(remote_dir, user="ci", host="other-runner", pid=4242, time="old")
    past = time.time() - STALE_LOCK_SECONDS - 60
    os.utime(lock, (past, past))
    result = cli("deploy", "--file", str(encrypt(env_text(1))), *target_args)
    assert result.returncode == 0, result.stderr
    assert "taking over the stale lock" in result.stderr
    assert "ci@other-runner pid 4242" in result.stderr
    assert not lock.exists()


def test_lock_of_dead_local_process_is_taken_over(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """A fresh lock whose holder process on this machine is gone does not block."""
    proc = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    write_lock(remote_dir, user="me", host=os.uname().nodename, pid=int(proc.stdout), time="now")
    result = cli("deploy", "--file", str(encrypt(env_text(1))), *target_args)
    assert result.returncode == 0, result.stderr
    assert "is gone" in result.stderr


def test_stale_temp_files_are_cleaned(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """Temp files of ours left by a dead deploy are removed; other files are not touched."""
    debris = remote_dir / "..env.sops-deploy.0123456789ab.tmp"
    debris.write_text("PARTIAL=partial-value\n")
    other = remote_dir / "unrelated.tmp"
    other.write_text("keep me")
    result = cli("deploy", "--file", str(encrypt(env_text(1))), *target_args)
    assert result.returncode == 0, result.stderr
    assert not debris.exists()
    assert other.exists()


def test_audit_line_names_keys_commit_actor_and_run(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """Each deploy appends one JSON line: digest, key names, commit, actor, run URL, result."""
    (remote_dir / ".env").write_text("VERSION_KEY=version-value-000\nGONE_KEY=gone-value-1\n")
    github = {
        "GITHUB_SHA": "a" * 40,
        "GITHUB_ACTOR": "octocat",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/app",
        "GITHUB_RUN_ID": "12345",
    }
    result = cli("deploy", "--file", str(encrypt(env_text(7))), *target_args, env=github)
    assert result.returncode == 0, result.stderr
    log = remote_dir / ".env.deploy.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    (line,) = log.read_text().splitlines()
    record = json.loads(line)
    import hashlib

    assert record["sha256"] == hashlib.sha256((remote_dir / ".env").read_bytes()).hexdigest()
    assert record["added"] == ["STABLE_KEY"]
    assert record["removed"] == ["GONE_KEY"]
    assert record["changed"] == ["VERSION_KEY"]
    assert record["commit"] == "a" * 40
    assert record["actor"] == "octocat"
    assert record["run_url"] == "https://github.com/acme/app/actions/runs/12345"
    assert record["result"] == "changed"
    assert "version-value" not in line


def test_owner_of_a_file_nobody_chose_is_not_copied_and_the_run_names_owner(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """Replacing a file owned by nobody:nogroup that no deploy gave that owner: the new file
    is the login user's (never the planted file's owner), and a warning names --owner;
    with --owner 65534:65534 (the nearest valid input) it keeps that owner."""
    target = remote_dir / ".env"
    target.write_text("OLD=old-value-1\n")
    os.chown(target, 65534, 65534)
    result = cli("deploy", "--file", str(encrypt(env_text(2))), *target_args)
    assert result.returncode == 0, result.stderr
    st = target.stat()
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert "belonged to 65534:65534" in result.stderr
    assert "--owner 65534:65534" in result.stderr
    assert b"version-value-002" in target.read_bytes()
    chosen = cli(
        "deploy", "--file", str(encrypt(env_text(3))), *target_args, "--owner", "65534:65534"
    )
    assert chosen.returncode == 0, chosen.stderr
    assert (target.stat().st_uid, target.stat().st_gid) == (65534, 65534)


def test_symlink_refused_unless_follow_symlinks(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """A symlink at the target is refused; with --follow-symlinks the real file is written."""
    real = remote_dir / "real.env"
    real.write_text("OLD=old-value-1\n")
    (remote_dir / ".env").symlink_to(real)
    enc = encrypt(env_text(3))
    refused = cli("deploy", "--file", str(enc), *target_args)
    assert refused.returncode == 1
    assert "is a symlink; refusing to replace it" in refused.stderr
    assert "--follow-symlinks" in refused.stderr
    assert real.read_text() == "OLD=old-value-1\n"
    followed = cli("deploy", "--file", str(enc), *target_args, "--follow-symlinks")
    assert followed.returncode == 0, followed.stderr
    assert (remote_dir / ".env").is_symlink()
    assert b"version-value-003" in real.read_bytes()


def test_unauthorized_key_names_its_type_and_fingerprint(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], tmp_path: Path,
    secret_values: set[str], remote_dir: Path,
) -> None:  # fmt: skip
    """A key the server does not accept fails naming user, key type and fingerprint."""
    keygen(tmp_path / "stranger", "ecdsa")
    key = (tmp_path / "stranger").read_text()
    secret_values.add(key.strip())
    result = cli("deploy", "--file", str(encrypt(env_text(1))), *target_args,
                 env={"SSH_PRIVATE_KEY": key})  # fmt: skip
    assert result.returncode == 1
    assert "authentication failed for user" in result.stderr
    assert "ecdsa-sha2-nistp256 key SHA256:" in result.stderr
    assert "authorized_keys" in result.stderr
    assert not (remote_dir / ".env").exists()


@pytest.fixture
def tiny_disk(remote_dir: Path) -> Iterator[Path]:
    """The remote directory on a 64 KiB tmpfs (tests run as root; mount is real)."""
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(remote_dir)],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    yield remote_dir
    subprocess.run(["umount", str(remote_dir)], check=False)


def test_disk_full_is_named_and_old_file_kept(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], tiny_disk: Path
) -> None:
    """A write that does not fit says the disk is full and leaves the old file whole."""
    old = "OLD=old-value-1\n"
    (tiny_disk / ".env").write_text(old)
    big = "".join(f"FILL_{i:04d}=" + "f" * 100 + "\n" for i in range(900))
    result = cli("deploy", "--file", str(encrypt(big, guard=False)), *target_args, "--backup", "0")
    assert result.returncode == 1
    assert "is full" in result.stderr
    assert "free space on the server" in result.stderr
    assert (tiny_disk / ".env").read_text() == old
    assert not [p for p in tiny_disk.iterdir() if p.name.endswith(".tmp")]


def test_backup_that_does_not_fit_replaces_nothing(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], tiny_disk: Path
) -> None:
    """When the backup cannot be written the deploy stops before replacing anything."""
    old = "OLD=" + "o" * 40_000 + "\n"
    (tiny_disk / ".env").write_text(old)
    result = cli("deploy", "--file", str(encrypt(env_text(1))), *target_args)
    assert result.returncode == 1
    assert "could not write the backup" in result.stderr
    assert "--backup 0" in result.stderr
    assert (tiny_disk / ".env").read_text() == old
    assert not [p for p in tiny_disk.iterdir() if ".bak." in p.name or ".tmp" in p.name]


SRC = Path(__file__).resolve().parent.parent / "src" / "sops_deploy"
PRIVATE_WIRE = ("._request(", "_saved_exception", "_send_message", "_parse_global_request")


def test_only_the_connection_touches_paramiko_internals() -> None:
    """Paramiko's private API and the raw SFTP client appear in remote/connection.py only;
    the remote, deploy and plan packages never read os.environ."""
    connection = SRC / "remote" / "connection.py"
    offenders = []
    for module in SRC.rglob("*.py"):
        text = module.read_text()
        if module != connection:
            offenders += [f"{module.name}: {p}" for p in (*PRIVATE_WIRE, ".sftp.") if p in text]
        below = {"remote", "deploy", "plan"} & set(module.relative_to(SRC).parts[:-1])
        if below and "os.environ" in text:
            offenders.append(f"{module.name}: os.environ")
    assert offenders == []
    assert all(p in connection.read_text() for p in PRIVATE_WIRE)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param(
            {"USER": "alice", "GITHUB_ACTOR": "octocat", "GITHUB_SHA": "b" * 40,
             "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/app",
             "GITHUB_RUN_ID": "7"},
            ("alice", "octocat", "b" * 40, "7", "https://github.com/acme/app/actions/runs/7"),
            id="github-run",
        ),
        pytest.param(
            {"LOGNAME": "bob", "GITHUB_RUN_ID": "7"},
            ("bob", "bob", None, "7", None),
            id="local-with-partial-github",
        ),
    ],
)  # fmt: skip
def test_run_info_comes_from_the_mapping_it_is_given(
    environ: dict[str, str], expected: tuple[object, ...]
) -> None:
    """RunInfo (for the lock and the audit) reads user, actor, sha and run from the
    mapping passed in, nothing else."""
    run = runinfo.from_environ(environ, {})
    assert (run.user, run.actor, run.github_sha, run.run_id, run.run_url) == expected
    if run.github_sha:
        assert run.commit() == run.github_sha
