"""Shared by the maintainer-command tests (init, rotation, doctor): a plaintext .env, a
repository set up by `sops-deploy init`, and sops decryption on the test side."""

from __future__ import annotations

import io
import os
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

from dotenv import dotenv_values

from sops_deploy.sops import agekey
from tests.sshd import Sshd
from tests.support import CliResult, assert_no_secrets, target_flags

Cli = Callable[..., CliResult]

PLAIN = (
    "DATABASE_URL=postgres://app:Init-Secret-Pw@db:5432/app\n"
    "API_TOKEN=tok_init_0a1b2c3d4e\n"
    'GREETING="hello # not a comment"\n'
)
VALUES = {
    "DATABASE_URL": "postgres://app:Init-Secret-Pw@db:5432/app",
    "API_TOKEN": "tok_init_0a1b2c3d4e",
    "GREETING": "hello # not a comment",
}


def sops_plaintext(sops_bin: str, path: Path, key_text: str) -> dict[str, str | None]:
    """Decrypt with the real sops and parse with python-dotenv (test-side only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
    env["SOPS_AGE_KEY"] = key_text
    out = subprocess.run(
        [sops_bin, "decrypt", "--input-type", "dotenv", "--output-type", "dotenv", str(path)],
        env=env,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return dict(dotenv_values(stream=io.StringIO(out), interpolate=False))


def init_repo(
    cli: Cli,
    tmp_path: Path,
    sshd_server: Sshd,
    remote_dir: Path,
    secret_values: set[str],
    *extra: str,
) -> CliResult:
    """`git init` + a plaintext .env + `sops-deploy init --from .env --host … --yes`."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".env").write_text(PLAIN)
    secret_values.update(VALUES.values())
    result = cli(
        "init",
        "--from",
        ".env",
        *target_flags(sshd_server.host, remote_dir / ".env", ssh_key_file=sshd_server.client_key),
        *extra,
    )
    key_file = tmp_path / "secrets" / "age-key.txt"
    if key_file.exists():
        new_secret = agekey.identities(key_file.read_text())[0]
        assert_no_secrets(result.output, {new_secret})
        secret_values.add(new_secret)
    return result


def printed_deploy_command(stdout: str) -> list[str]:
    lines = [line.strip() for line in stdout.splitlines()]
    command = next(line for line in lines if line.startswith("sops-deploy deploy "))
    return shlex.split(command)[1:]
