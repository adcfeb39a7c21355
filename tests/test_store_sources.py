"""`--file vault://MOUNT/PATH` and `--file aws-sm://NAME`: a store secret as the source of a
deploy, checked exactly as an encrypted file is (real OpenBao, real moto, real sshd)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.stores import Moto, OpenBao
from tests.storesync import PLAIN, sorted_plain, values_of
from tests.support import CliResult


@pytest.fixture
def vault_path(openbao: OpenBao, encrypt: Callable[..., Path]) -> str:
    """A KV v2 secret holding PLAIN's exact values (values registered with the guard)."""
    encrypt(PLAIN)  # registers every value of PLAIN as a secret for the output guard
    rest = f"apps/{uuid.uuid4().hex[:8]}"
    openbao.api("POST", f"secret/data/{rest}", {"data": values_of(PLAIN)})
    return f"secret/{rest}"


def sha(result: CliResult) -> str:
    found = re.search(r"sha256 ([0-9a-f]{12})", result.stdout)
    assert found, result.output
    return found.group(1)


def test_a_vault_source_makes_the_same_plan_as_the_encrypted_file(
    cli: Callable[..., CliResult],
    encrypt: Callable[..., Path],
    openbao: OpenBao,
    vault_path: str,
    secret_values: set[str],
) -> None:
    secret_values.add(openbao.token)
    env = openbao.env()
    from_file = cli("validate", "--file", str(encrypt(sorted_plain(PLAIN))))
    from_store = cli("validate", "--file", f"vault://{vault_path}", env=env)
    assert from_file.returncode == 0, from_file.output
    assert from_store.returncode == 0, from_store.output
    assert sha(from_store) == sha(from_file)
    for fmt in ("dotenv", "shell", "systemd"):
        a = cli("validate", "--format", fmt, "--file", str(encrypt(sorted_plain(PLAIN))))
        b = cli("validate", "--format", fmt, "--file", f"vault://{vault_path}", env=env)
        assert sha(a) == sha(b), fmt
    missing = cli("validate", "--file", f"vault://{vault_path}", "--required", "NOT_THERE", env=env)
    assert missing.returncode == 4
    assert f"vault://{vault_path}" in missing.output
    assert "NOT_THERE" in missing.output
    absent = cli("validate", "--file", "vault://secret/apps/none-here", env=env)
    assert absent.returncode == 1
    assert "no secret there" in absent.output
    no_token = cli("validate", "--file", f"vault://{vault_path}", env={**env, "VAULT_TOKEN": ""})
    assert no_token.returncode == 2
    assert "VAULT_TOKEN" in no_token.output


def test_a_deploy_from_vault_writes_what_the_encrypted_file_writes(
    cli: Callable[..., CliResult],
    encrypt: Callable[..., Path],
    openbao: OpenBao,
    vault_path: str,
    target_args: list[str],
    remote_dir: Path,
    secret_values: set[str],
) -> None:
    secret_values.add(openbao.token)
    done = cli("deploy", "--file", f"vault://{vault_path}", *target_args, env=openbao.env())
    assert done.returncode == 0, done.output
    from_store = (remote_dir / ".env").read_bytes()
    again = cli("deploy", "--file", str(encrypt(sorted_plain(PLAIN))), *target_args)
    assert again.returncode == 0, again.output
    assert "unchanged" in again.output.lower()
    assert (remote_dir / ".env").read_bytes() == from_store
    check = cli("check", "--file", f"vault://{vault_path}", *target_args, env=openbao.env())
    assert check.returncode == 0, check.output


def test_an_environment_lists_a_store_among_its_files(
    cli: Callable[..., CliResult],
    encrypt: Callable[..., Path],
    openbao: OpenBao,
    vault_path: str,
    tmp_path: Path,
    secret_values: set[str],
) -> None:
    secret_values.add(openbao.token)
    over = encrypt("APP_MODE=override-from-file-3\n", name="over.env.encrypted")
    (tmp_path / "sops-deploy.yaml").write_text(
        "environments:\n"
        "  prod:\n"
        f"    files: ['vault://{vault_path}', {over.name}]\n"
        "    hosts: [deploy@example.invalid]\n"
        "    remote-path: /srv/app/.env\n"
    )
    r = cli("validate", "--config", "sops-deploy.yaml", "--env", "prod", env=openbao.env())
    assert r.returncode == 0, r.output
    assert f"vault://{vault_path}, over.env.encrypted: 7 keys valid" in r.stdout
    assert f"vault://{vault_path}: EMPTY: [empty-value]" in r.output  # linted as a file is


def test_an_aws_source_makes_the_same_plan_as_the_encrypted_file(
    cli: Callable[..., CliResult],
    encrypt: Callable[..., Path],
    moto: Moto,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    boto3: Any = pytest.importorskip("boto3")
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    enc = encrypt(PLAIN)
    boto3.client("secretsmanager").create_secret(
        Name="prod/src", SecretString=json.dumps(values_of(PLAIN))
    )
    from_file = cli("validate", "--file", str(enc))
    from_store = cli("validate", "--file", "aws-sm://prod/src", env=moto.env())
    assert from_store.returncode == 0, from_store.output
    assert sha(from_store) == sha(from_file)
    boto3.client("secretsmanager").create_secret(Name="prod/text", SecretString="not json")
    text = cli("validate", "--file", "aws-sm://prod/text", env=moto.env())
    assert text.returncode == 1
    assert "does not hold a JSON object" in text.output
    gone = cli("validate", "--file", "aws-sm://prod/none", env=moto.env())
    assert gone.returncode == 1
    assert "no such secret" in gone.output


def test_a_store_feeds_another_store_without_sops(
    cli: Callable[..., CliResult],
    encrypt: Callable[..., Path],
    moto: Moto,
    openbao: OpenBao,
    monkeypatch: pytest.MonkeyPatch,
    secret_values: set[str],
) -> None:
    """aws-sm:// → vault-sync: no encrypted file, so no sops is needed (a missing one is fine)."""
    boto3: Any = pytest.importorskip("boto3")
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    encrypt(PLAIN)  # registers PLAIN's values with the output guard
    secret_values.add(openbao.token)
    boto3.client("secretsmanager").create_secret(
        Name="prod/copy", SecretString=json.dumps(values_of(PLAIN))
    )
    path = f"apps/copy-{uuid.uuid4().hex[:6]}"
    env = {**moto.env(), **openbao.env(), "SOPS_DEPLOY_SOPS": "/nonexistent/sops"}
    r = cli("vault-sync", "--file", "aws-sm://prod/copy", "--path", f"secret/{path}", env=env)
    assert r.returncode == 0, r.output
    assert openbao.api("GET", f"secret/data/{path}")["data"]["data"] == values_of(PLAIN)
    custom = openbao.api("GET", f"secret/metadata/{path}")["data"]["custom_metadata"]
    assert custom["sops-deploy-source"] == "aws-sm://prod/copy"


def test_github_sync_from_a_vault_source(
    cli: Callable[..., CliResult],
    openbao: OpenBao,
    vault_path: str,
    secret_values: set[str],
) -> None:
    """The store source serves github-sync too (the same read_all), checked on GitHub's contract."""
    from tests import github_contract
    from tests.github_api import GitHubApi

    token = "ghp_vault_source_token_9f8e7d6c"
    secret_values.update({token, openbao.token})
    contract = github_contract.load()
    contract.violations.clear()
    with GitHubApi(token, "octo-org/app", contract=contract) as github:
        env = {**openbao.env(), "GH_TOKEN": token, "GITHUB_API_URL": github.url,
               "GITHUB_REPOSITORY": "octo-org/app"}  # fmt: skip
        r = cli("github-sync", "--file", f"vault://{vault_path}", "--keys", "DATABASE_URL", env=env)
        assert r.returncode == 0, r.output
        assert github.secret_values() == {"DATABASE_URL": values_of(PLAIN)["DATABASE_URL"]}
    assert contract.violations == []
