"""A newcomer's first steps: init's questions in the safe order, host failures named once,
doctor's `!` for what is missing, and a package build without deprecation warnings."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.maintaining import PLAIN, VALUES, Cli
from tests.sshd import Sshd, free_port
from tests.support import REPO, target_flags


def test_init_asks_to_delete_the_plaintext_only_after_the_backup_step(
    base_env: dict[str, str], tmp_path: Path, sshd_server: Sshd, secret_values: set[str]
) -> None:
    """`Back up secrets/age-key.txt` comes before `delete the plaintext .env?` (one stream)."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".env").write_text(PLAIN)
    proc = subprocess.run(
        [sys.executable, "-m", "sops_deploy", "init", "--from", ".env", "--host", sshd_server.host],
        env=base_env,
        cwd=tmp_path,
        input="y\ny\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout
    backup = proc.stdout.index("Back up secrets/age-key.txt")
    delete = proc.stdout.index("delete the plaintext .env?")
    assert backup < delete, proc.stdout
    assert not (tmp_path / ".env").exists()
    for value in VALUES.values():
        assert value not in proc.stdout


def test_a_host_failure_names_the_host_once(
    cli: Cli, tmp_path: Path, encrypt: Callable[..., Path]
) -> None:
    """`✗ HOST: reason`, not `✗ HOST: HOST: reason`."""
    path = encrypt(PLAIN)
    port = free_port()
    known = tmp_path / "known_hosts"
    known.write_text("")
    host = f"127.0.0.1:{port}"
    result = cli(
        "deploy", "--file", str(path), *target_flags(host, tmp_path / "x.env", known), timeout=60
    )
    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("✗ ")]
    assert failed, result.stderr
    assert all(line.count(f":{port}") == 1 for line in failed), failed
    assert re.match(rf"✗ \S*127\.0\.0\.1:{port}: \S", failed[0])


def test_package_metadata_uses_an_spdx_license() -> None:
    """`license = "MIT"` (PEP 639) with a setuptools that reads it, also in the action's lock."""
    pyproject = (REPO / "pyproject.toml").read_text()  # tomllib is 3.11+; the lines suffice
    assert re.search(r'^license = "MIT"$', pyproject, re.M)
    assert re.search(r'^requires = \["setuptools>=77"\]', pyproject, re.M)
    lock = (REPO / "requirements/action.txt").read_text()
    pinned = re.search(r"^setuptools==(\d+)\.", lock, re.M)
    assert pinned is not None
    assert int(pinned.group(1)) >= 77
