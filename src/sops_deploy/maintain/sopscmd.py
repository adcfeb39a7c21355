"""Run sops for the maintainer commands: encrypt, set, rotate, updatekeys.

Like `sops.decrypt`, the age key reaches sops only through the child's environment and a
new value only through stdin (`sops set --value-stdin`), never through argv, where any
user on the machine could read it in the process list. Every path follows `--`, so a
file named `--output=x` is a file. Failures are mapped by `sops.error`.
"""

from __future__ import annotations

import json
from pathlib import Path

from sops_deploy.sops import runner

TIMEOUT = 120.0


def run(
    sops_bin: str,
    args: list[str],
    key: runner.AgeKeySource,
    *,
    what: str,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    config: Path | None = None,
) -> bytes:
    """Run `sops ARGS`; stdout on success, a `SopsDeployError` naming `what` otherwise."""
    env = key.child_env()
    if config is not None:
        env["SOPS_CONFIG"] = str(config.resolve())
    proc = runner.run(
        [sops_bin, *args],
        env,
        what=what,
        timeout=TIMEOUT,
        stdin=stdin,
        cwd=None if cwd is None else str(cwd),
    )
    if proc.returncode == 0:
        return proc.stdout
    raise runner.error(
        proc.returncode,
        proc.stderr.decode("utf-8", "replace"),
        key,
        what=what,
        hint="see the message above",
    )


def encrypt_dotenv(
    sops_bin: str,
    plaintext: bytes,
    source: str,
    target: Path,
    key: runner.AgeKeySource,
    config: Path,
) -> bytes:
    """The sops-encrypted form of plaintext dotenv text (through stdin), by the rule for
    `target`; `source` names the plaintext in messages."""
    return run(
        sops_bin,
        [
            "encrypt",
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
            f"--filename-override={target}",
            "--",
            "/dev/stdin",
        ],
        key,
        what=source,
        stdin=plaintext,
        config=config,
    )


def set_value(
    sops_bin: str, path: Path, stored: str, key_name: str, value: str, age: runner.AgeKeySource
) -> None:
    """Set one key in the encrypted file in place; the value goes through stdin as JSON."""
    run(
        sops_bin,
        [
            "set",
            "--input-type",
            stored,
            "--output-type",
            stored,
            "--value-stdin",
            "--",
            str(path),
            json.dumps([key_name]),
        ],
        age,
        what=f"{path}: {key_name}",
        stdin=json.dumps(value).encode("utf-8"),
    )


def rotate_data_key(sops_bin: str, path: Path, stored: str, age: runner.AgeKeySource) -> None:
    """sops's own data-key rotation: new data key, every value re-encrypted, in place."""
    run(
        sops_bin,
        ["rotate", "-i", "--input-type", stored, "--output-type", stored, "--", str(path)],
        age,
        what=str(path),
    )


def update_keys(
    sops_bin: str, path: Path, stored: str, age: runner.AgeKeySource, config: Path
) -> None:
    """`sops updatekeys -y`: re-encrypt the data key for the recipients in `config`."""
    run(
        sops_bin,
        ["updatekeys", "-y", "--input-type", stored, "--", str(path.relative_to(config.parent))],
        age,
        what=str(path),
        cwd=config.parent,
        config=config,
    )
