"""Start-up stays light: `--help`, `--version` and `validate` never load Paramiko (and the
first two load no parser, YAML or crypto library at all). Checked in a fresh interpreter
through `sys.modules`, not by timing (timing lives in `make bench`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import AgeIdentity, CliResult

PROBE = """
import contextlib, io, json, sys
from sops_deploy.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

HEAVY = ("paramiko", "cryptography", "yaml", "dotenv", "sops_deploy.commands")


def loaded(args: list[str], env: dict[str, str] | None = None) -> tuple[int, set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    answer = json.loads(proc.stdout.splitlines()[-1])
    return answer["code"], set(answer["modules"])


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["deploy", "--help"]])
def test_help_and_version_load_no_heavy_library(args: list[str]) -> None:
    code, modules = loaded(args)
    assert code == 0
    assert "sops_deploy.cli" in modules
    assert not [m for m in modules if m.startswith(HEAVY)]


def test_version_loads_no_parser_at_all() -> None:
    """`--version` answers before argparse, the option table or the reporter is imported."""
    code, modules = loaded(["--version"])
    assert code == 0
    assert not {"argparse", "sops_deploy.inputs.table", "sops_deploy.output.reporter"} & modules


def test_validate_never_loads_paramiko(
    encrypt: Callable[..., Path], age_id: AgeIdentity, sops_bin: str
) -> None:
    enc = encrypt("DATABASE_URL=postgres://u:Startup-Pw1@db/app\n")
    code, modules = loaded(
        ["validate", "--file", str(enc)],
        {"AGE_KEY": age_id.secret, "SOPS_DEPLOY_SOPS": sops_bin},
    )
    assert code == 0
    assert "sops_deploy.commands" in modules  # it did run
    assert not [m for m in modules if m.startswith(("paramiko", "sops_deploy.remote"))]
    # Nothing it does not use: no download stack (tools -> release), no YAML for a dotenv
    # file without a schema.yaml, no thread pool or sockets (deploy.py).
    unused = {"urllib.request", "http.client", "ssl", "tarfile", "platform", "yaml", "socket"}
    assert not unused & modules
    assert "sops_deploy.deploy.rollout" not in modules
    assert not [m for m in modules if m.startswith(STORE_CLIENTS)]


# The stores' clients load only for vault-sync / aws-sync or a vault:// / aws-sm:// source.
STORE_CLIENTS = ("boto3", "botocore", "sops_deploy.stores.aws", "sops_deploy.stores.vault")


@pytest.mark.parametrize("command", ["vault-sync", "aws-sync", "deploy", "validate"])
def test_no_store_client_loads_for_help(command: str) -> None:
    code, modules = loaded([command, "--help"])
    assert code == 0
    assert not [m for m in modules if m.startswith((*HEAVY, *STORE_CLIENTS))]


def test_a_deploy_that_fails_on_its_host_never_loaded_a_store_client(
    encrypt: Callable[..., Path], age_id: AgeIdentity, sops_bin: str
) -> None:
    """deploy reaches the network step (a closed port) without boto3 or the Vault client."""
    enc = encrypt("DATABASE_URL=postgres://u:Startup-Pw2@db/app\n")
    args = ["deploy", "--file", str(enc), "--host", "deploy@127.0.0.1:9", "--remote-path",
            "/srv/.env", "--retries", "0", "--timeout", "2"]  # fmt: skip
    code, modules = loaded(args, {"AGE_KEY": age_id.secret, "SOPS_DEPLOY_SOPS": sops_bin})
    assert code == 1
    assert "paramiko" in modules  # it did get as far as connecting
    assert not [m for m in modules if m.startswith(STORE_CLIENTS)]


def test_a_log_that_cannot_show_unicode_gets_escapes_not_a_traceback(
    cli: Callable[..., CliResult], encrypt: Callable[..., Path]
) -> None:
    """PYTHONIOENCODING=ascii: the ✓ and → of the report arrive as backslash escapes."""
    enc = encrypt("DATABASE_URL=postgres://u:Ascii-Pw1@db/app\n")
    result = cli("validate", "--file", str(enc), env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output
    assert "\\u" in result.output  # the report's non-ASCII marks, escaped
