"""What tests, `bench/` and `scripts/demo.py` share: the repository root, the records the CLI
fixtures return, the secrets guard, sops encryption and the one factory for target flags.

Importable as `tests.support` from the repository root: pytest puts the root on the path
(`tests/` is a package) and `make bench` / `make demo` run `python -m` from there.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.sshd import Sshd

REPO = Path(__file__).resolve().parent.parent
GUARD_MIN = 4  # values shorter than this cannot be told apart from ordinary output


@dataclass(frozen=True)
class AgeIdentity:
    secret: str
    public: str
    path: Path


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def assert_no_secrets(text: str, values: set[str]) -> None:
    """Fail if any secret (or any line of a multi-line one) appears in `text`."""
    for value in values:
        for piece in {value, *value.splitlines()}:
            piece = piece.strip()
            if len(piece) >= GUARD_MIN and piece in text:
                raise AssertionError(
                    f"a secret value leaked into the output ({len(piece)} chars, "
                    f"starts {piece[:2]!r}…)"
                )


def sops_encrypt(
    sops_bin: str, plaintext: bytes, recipients: Iterable[str], *, fmt: str = "dotenv"
) -> bytes:
    """The real sops encrypting `plaintext` (read from stdin, never a file) for age recipients."""
    proc = subprocess.run(
        [
            sops_bin,
            "encrypt",
            "--input-type",
            fmt,
            "--output-type",
            "json" if fmt == "binary" else fmt,
            "--age",
            ",".join(recipients),
            "/dev/stdin",
        ],
        input=plaintext,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"sops encrypt failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def target_flags(
    hosts: str | Iterable[str],
    remote_path: str | Path,
    known_hosts: str | Path | None = None,
    *,
    ssh_key_file: str | Path | None = None,
) -> list[str]:
    """The flags that point a command at hosts: --host (each), --remote-path, and optionally
    --known-hosts and --ssh-key-file. The one place tests, bench and demo spell them out."""
    flags: list[str] = []
    for host in [hosts] if isinstance(hosts, str) else hosts:
        flags += ["--host", host]
    flags += ["--remote-path", str(remote_path)]
    if known_hosts is not None:
        flags += ["--known-hosts", str(known_hosts)]
    if ssh_key_file is not None:
        flags += ["--ssh-key-file", str(ssh_key_file)]
    return flags


@dataclass
class FleetHost:
    """One sshd of the fleet: `root` is its ChrootDirectory, so `/srv/app/.env` is its own."""

    sshd: Sshd
    root: Path

    def path(self, remote: str = "/srv/app/.env") -> Path:
        """Where a remote path of this host lies on the local filesystem."""
        return self.root / remote.lstrip("/")


def deploy_at_once(
    files: list[Path],
    args: list[str],
    env: dict[str, str],
    cwd: Path,
    secret_values: set[str],
    timeout: float,
) -> list[tuple[str, str]]:
    """One CLI `deploy --file F ARGS` per file, all started at once: each must succeed and
    print no secret. Their (stdout, stderr), in file order."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "sops_deploy", "deploy", "--file", str(f), *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in files
    ]
    outputs = [p.communicate(timeout=timeout) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert_no_secrets(out + err, secret_values)
        assert p.returncode == 0, err
    return outputs


def deploy_one(settings: Any, plan: Any, warn: Callable[[str], None]) -> Any:
    """A ready plan deployed, in-process, to the one host of `settings` through a
    `Rollout` as the CLI does; that host's result (a `HostResult`)."""
    from sops_deploy.deploy.rollout import Rollout

    with Rollout(settings, warn) as rollout:
        (result,) = rollout.apply(plan)
    return result
