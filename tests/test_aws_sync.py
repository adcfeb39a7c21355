"""`sops-deploy aws-sync` against a real moto server (tests/stores.py): one JSON secret
with exact values, the managed-by tag, no version when nothing changed, drift, A-B-A,
foreign secrets, the KMS key, bad credentials, an endpoint that is down; no value or key
in any output. No client in these tests can reach a real AWS host (Moto.env)."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import stores
from tests.stores import Moto
from tests.storesync import PLAIN, outputs, runner, values_of
from tests.support import CliResult

boto3 = pytest.importorskip("boto3")


@pytest.fixture
def sm(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A Secrets Manager client of this test process, at moto only."""
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    client = boto3.client("secretsmanager")
    assert client.meta.endpoint_url == moto.endpoint
    return client


@pytest.fixture
def aws_sync(
    cli: Callable[..., CliResult], moto: Moto, secret_values: set[str], tmp_path: Path
) -> Callable[..., CliResult]:
    secret_values.add(stores.AWS_SECRET_KEY)
    return runner(cli, "aws-sync", moto.env(), secret_values, tmp_path)


def unique() -> str:
    return f"prod/web-{uuid.uuid4().hex[:8]}"


def current(sm: Any, name: str) -> dict[str, str]:
    return dict(json.loads(sm.get_secret_value(SecretId=name)["SecretString"]))


def versions(sm: Any, name: str) -> int:
    return len(sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"])


def test_one_json_secret_tagged_exact_and_idempotent(
    aws_sync: Callable[..., CliResult], encrypt: Callable[..., Path], sm: Any
) -> None:
    name = unique()
    enc = str(encrypt(PLAIN))
    first = aws_sync("--file", enc, "--name", name)
    assert first.returncode == 0, first.output
    assert current(sm, name) == values_of(PLAIN)
    tags = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=name)["Tags"]}
    assert tags["managed-by"] == "sops-deploy"
    assert tags["sops-deploy-source"] == "secrets.env.encrypted"
    assert outputs(first)["changed"] == "true"
    again = aws_sync("--file", enc, "--name", name)
    assert again.returncode == 0, again.output
    assert "0 write request(s)" in again.stdout
    assert versions(sm, name) == 1
    assert outputs(again)["changed"] == "false"


def test_check_names_drift_and_a_b_a_makes_a_current_again(
    aws_sync: Callable[..., CliResult], encrypt: Callable[..., Path], sm: Any
) -> None:
    name = unique()
    a = str(encrypt(PLAIN, name="a.env.encrypted"))
    b_plain = PLAIN.replace("production-mode-x", "staging-mode-b-y")
    b = str(encrypt(b_plain, name="b.env.encrypted"))
    assert aws_sync("--file", a, "--name", name).returncode == 0
    check = aws_sync("--file", b, "--name", name, "--check")
    assert check.returncode == 3, check.output
    assert "update  APP_MODE" in check.stdout
    assert outputs(check)["changed-keys"] == "APP_MODE"
    assert aws_sync("--file", b, "--name", name).returncode == 0
    assert current(sm, name) == values_of(b_plain)
    back = aws_sync("--file", a, "--name", name)
    assert back.returncode == 0, back.output
    assert current(sm, name) == values_of(PLAIN)
    assert aws_sync("--file", a, "--name", name, "--check").returncode == 0

    sm.put_secret_value(SecretId=name, SecretString=json.dumps({"CONSOLE": "edit-x9-value"}))
    drift = aws_sync("--file", a, "--name", name, "--check")
    assert drift.returncode == 3
    assert "remove  CONSOLE" in drift.stdout
    assert "edit-x9-value" not in drift.output
    assert aws_sync("--file", a, "--name", name).returncode == 0
    assert current(sm, name) == values_of(PLAIN)


def test_a_foreign_secret_is_refused_until_adopt(
    aws_sync: Callable[..., CliResult], encrypt: Callable[..., Path], sm: Any
) -> None:
    name = unique()
    sm.create_secret(Name=name, SecretString=json.dumps({"THEIRS": "not-ours-value-4"}))
    enc = str(encrypt(PLAIN))
    refused = aws_sync("--file", enc, "--name", name)
    assert refused.returncode == 1
    assert "was not created by sops-deploy" in refused.output
    assert current(sm, name) == {"THEIRS": "not-ours-value-4"}
    assert "Tags" not in sm.describe_secret(SecretId=name) or not any(
        t["Key"] == "managed-by" for t in sm.describe_secret(SecretId=name)["Tags"]
    )
    adopted = aws_sync("--file", enc, "--name", name, "--adopt")
    assert adopted.returncode == 0, adopted.output
    assert current(sm, name) == values_of(PLAIN)
    assert aws_sync("--file", enc, "--name", name).returncode == 0


def test_the_kms_key_is_the_one_asked_for(
    aws_sync: Callable[..., CliResult], encrypt: Callable[..., Path], sm: Any
) -> None:
    kms = boto3.client("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    name = unique()
    enc = str(encrypt(PLAIN))
    r = aws_sync("--file", enc, "--name", name, "--kms-key-id", key)
    assert r.returncode == 0, r.output
    assert sm.describe_secret(SecretId=name)["KmsKeyId"].endswith(key)
    again = aws_sync("--file", enc, "--name", name, "--kms-key-id", key)
    assert "0 write request(s)" in again.stdout
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    moved = aws_sync("--file", enc, "--name", name, "--kms-key-id", other)
    assert moved.returncode == 0, moved.output
    assert sm.describe_secret(SecretId=name)["KmsKeyId"].endswith(other)
    assert current(sm, name) == values_of(PLAIN)


@pytest.fixture(scope="module")
def moto_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """A moto server that checks credentials (only IAM-known access keys pass)."""
    server = stores.start_moto(
        tmp_path_factory.mktemp("moto-auth"), {"INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    )
    yield server
    server.stop()


def test_bad_credentials_and_a_missing_region_fail_saying_so(
    cli: Callable[..., CliResult],
    encrypt: Callable[..., Path],
    moto_with_auth: Moto,
    secret_values: set[str],
    tmp_path: Path,
) -> None:
    secret_values.add(stores.AWS_SECRET_KEY)
    run = runner(cli, "aws-sync", moto_with_auth.env(), secret_values, tmp_path)
    enc = str(encrypt(PLAIN))
    bad = run("--file", enc, "--name", unique())
    assert bad.returncode == 1, bad.output
    assert "AWS refused the credentials" in bad.output
    no_region = run(
        "--file", enc, "--name", unique(), extra={"AWS_REGION": "", "AWS_DEFAULT_REGION": ""}
    )
    assert no_region.returncode == 2
    assert "no AWS region" in no_region.output


def test_an_endpoint_that_is_down_or_silent_fails_within_the_timeout(
    aws_sync: Callable[..., CliResult], encrypt: Callable[..., Path]
) -> None:
    enc = str(encrypt(PLAIN))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    down = aws_sync(
        "--file", enc, "--name", unique(), "--retries", "0", extra={"AWS_ENDPOINT_URL": url}
    )
    assert down.returncode == 1
    assert "cannot reach Secrets Manager" in down.output
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        hung = aws_sync(
            "--file", enc, "--name", unique(), "--timeout", "1", "--retries", "0",
            extra={"AWS_ENDPOINT_URL": url},
        )  # fmt: skip
        elapsed = time.monotonic() - start
    assert hung.returncode == 1
    assert "did not answer" in hung.output
    assert elapsed < 20


def test_the_environments_sync_section_lists_the_secrets(
    aws_sync: Callable[..., CliResult], encrypt: Callable[..., Path], sm: Any, tmp_path: Path
) -> None:
    enc = encrypt(PLAIN)
    kms = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    (tmp_path / "sops-deploy.yaml").write_text(
        "environments:\n"
        "  prod:\n"
        f"    files: [{enc.name}]\n"
        "    github: {repo: octo-org/app, keys: [NOT_FOR_AWS]}\n"
        "    sync:\n"
        "      aws-secrets-manager:\n"
        f"        - {{name: prod/all, kms-key-id: {kms}}}\n"
        "        - {name: prod/db, keys: [DATABASE_URL], prefix: APP_}\n"
    )
    r = aws_sync("--config", "sops-deploy.yaml", "--env", "prod")
    assert r.returncode == 0, r.output
    want = values_of(PLAIN)
    assert current(sm, "prod/all") == want  # the github: section's keys are not aws-sync's
    assert sm.describe_secret(SecretId="prod/all")["KmsKeyId"].endswith(kms)
    assert current(sm, "prod/db") == {"APP_DATABASE_URL": want["DATABASE_URL"]}
    one = aws_sync("--config", "sops-deploy.yaml", "--env", "prod", "--name", "prod/only")
    assert one.returncode == 0, one.output
    assert current(sm, "prod/only") == want
    assert "aws-sm prod/all" not in one.stdout
