"""What the vault-sync and aws-sync tests share: a file of awkward values and a runner that
checks no value, token or key appears in stdout, stderr, GITHUB_OUTPUT or the summary."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

from dotenv import dotenv_values

from tests.support import CliResult, assert_no_secrets

PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
    "k3Zq9f0VYbUu/7r+Q2a1Xw==\n"
    "-----END PRIVATE KEY-----"
)
PLAIN = (
    "DATABASE_URL=postgres://app:St0re-Pw-77@db/app\n"
    'TLS_KEY="' + PEM.replace("\n", "\\n") + '"\n'
    "QUOTED='he said \"hi-store-9\" twice'\n"
    "DOLLAR='pa$$w0rd-$HOME-store'\n"
    "LEADING_EQ==eq-start-value-31\n"
    "EMPTY=\n"
    "APP_MODE=production-mode-x\n"
)


def sorted_plain(plain: str) -> str:
    """The same lines in key order: what a store hands back (Vault's KV maps are sorted)."""
    return "".join(sorted(plain.splitlines(keepends=True)))


def values_of(plain: str) -> dict[str, str]:
    """The exact values a reader of the dotenv text sees (python-dotenv, no interpolation)."""
    parsed = dotenv_values(stream=io.StringIO(plain), interpolate=False)
    return {k: v or "" for k, v in parsed.items()}


def runner(
    cli: Callable[..., CliResult], command: str, env: dict[str, str], secret_values: set[str],
    tmp_path: Path,
) -> Callable[..., CliResult]:  # fmt: skip
    """`command ARGS` with `env`, as on GitHub Actions (outputs and summary files)."""

    def run(*args: str, extra: dict[str, str] | None = None, timeout: float = 120) -> CliResult:
        files = {n: tmp_path / n.lower() for n in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")}
        for f in files.values():
            f.write_text("")
        run_env = {**env, **{k: str(v) for k, v in files.items()}, **(extra or {})}
        result = cli(command, *args, env=run_env, timeout=timeout)
        written = "".join(f.read_text() for f in files.values())
        assert_no_secrets(written, secret_values)
        result.files = {k: v.read_text() for k, v in files.items()}  # type: ignore[attr-defined]
        return result

    return run


def outputs(result: CliResult) -> dict[str, str]:
    """The outputs written to GITHUB_OUTPUT (`name<<DELIM` heredocs)."""
    text: str = result.files["GITHUB_OUTPUT"]  # type: ignore[attr-defined]
    found = re.findall(r"^([\w-]+)<<(ghadelim_\w+)\n(.*?)\n\2$", text, re.S | re.M)
    return {name: value for name, _, value in found}
