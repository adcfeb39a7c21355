"""A hostile SFTP server whose directory listing never ends (tests/hostile_sftp.py,
`endless-list`): the host fails within --timeout with the directory and the bound named,
the lock is released, and the client's memory stays small (peak RSS of the real CLI)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile_sftp import Hostile

RSS_LIMIT_KIB = 160 * 1024  # the CLI with paramiko, sops and one SSH connection: ~70 MiB


@pytest.mark.parametrize(
    ("trick", "fmt", "remote", "bound"),
    [
        pytest.param("endless-list", "dotenv", "/app/.env", "MiB of names", id="file-bytes"),
        pytest.param("endless-list", "files", "/app", "MiB of names", id="files-dir-bytes"),
        pytest.param("slow-list", "dotenv", "/app/.env", "not complete after 5s", id="time"),
        pytest.param(
            "endless-list-later", "dotenv", "/app/.env", "MiB of names", id="backup-listing"
        ),
    ],
)
def test_endless_listing_fails_the_host_within_the_timeout_in_little_memory(
    base_env: dict[str, str],
    encrypt: Callable[..., Path],
    hostile: Hostile,
    tmp_path: Path,
    trick: str,
    fmt: str,
    remote: str,
    bound: str,
) -> None:
    server, args = hostile(trick)
    (server.root / "app" / ".env").write_text("OLD_KEY=old-value-1\n")  # so there is a backup
    args[args.index("--remote-path") + 1] = remote
    started = time.monotonic()
    rss_file = tmp_path / "cli-peak-rss"
    proc = subprocess.Popen(
        [
            sys.executable, "-c", _MEASURED, str(rss_file),
            sys.executable, "-m", "sops_deploy", "deploy",
            "--file", str(encrypt("API_TOKEN=tok_list_0a1b2c3d\n")),
            *args, "--format", fmt,
        ],
        env=base_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the deploy did not end: the listing is not bounded")
    elapsed = time.monotonic() - started
    rss = _peak_rss_kib(rss_file)
    assert proc.returncode == 1, stdout + stderr
    assert "the listing of /app is " in stderr
    assert "refused" in stderr
    assert bound in stderr
    assert elapsed < 5 * 2 + 10, elapsed  # --timeout 5: the listing's bound, plus start-up
    assert server.sent > 1000  # the server did keep listing
    if rss is not None:
        assert rss < RSS_LIMIT_KIB, f"peak RSS {rss} KiB"
    assert not list((server.root / "app").glob("*.lock"))  # the lock was released
    if trick == "endless-list-later":
        assert server.listings >= 2  # the debris listing was honest; the backup one was not
    if fmt == "dotenv":
        assert (server.root / "app" / ".env").read_text() == "OLD_KEY=old-value-1\n"


# Runs the CLI as its only child and writes that child's peak RSS (the maximum over the
# children it reaped: the CLI and the sops it ran; Linux, KiB): the pytest process's own
# RUSAGE_CHILDREN would also count every server the session started and reaped.
_MEASURED = (
    "import resource, subprocess, sys; "
    "code = subprocess.call(sys.argv[2:]); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
    "sys.exit(code)"
)


def _peak_rss_kib(path: Path) -> int | None:
    """The CLI's peak RSS as the wrapper measured it (None off Linux)."""
    peak = int(path.read_text()) if path.exists() else 0
    return peak if sys.platform.startswith("linux") and peak else None


def test_ordinary_listing_is_complete(
    cli: Callable[..., object], encrypt: Callable[..., Path], hostile: Hostile
) -> None:
    """Nearest valid: an honest directory with many backups and debris lists completely
    (old backups pruned to --backup, our temp debris removed)."""
    server, args = hostile()
    app = server.root / "app"
    (app / ".env").write_text("OLD=old-value-1\n")
    for i in range(300):
        (app / f"unrelated-{i:04d}.txt").write_text("x")
    debris = app / "..env.sops-deploy.deadbeef.tmp"
    debris.write_text("debris")
    result = cli("deploy", "--file", str(encrypt("API_TOKEN=tok_list_4e5f6a7b\n")), *args)
    assert result.returncode == 0, result.output  # type: ignore[attr-defined]
    assert (app / ".env").read_text().startswith("API_TOKEN=")
    assert not debris.exists()
    assert len(list(app.glob("unrelated-*"))) == 300
