"""`command: vault-sync` and `command: aws-sync` of the composite action, run by real `act`
against a real OpenBao and moto server on 127.0.0.1 (tests/stores.py)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import stores
from tests.stores import Moto, OpenBao
from tests.storesync import PLAIN, values_of
from tests.support import REPO, AgeIdentity, assert_no_secrets
from tests.test_action import ActRun, act_cache, run_act  # noqa: F401 (act_cache: a fixture)

WORKFLOW = "tests/workflows/store-sync-test.yml"


def aws_wheelhouse() -> Path:
    lock = (REPO / "requirements" / "aws.txt").read_bytes()
    path = REPO / ".venv" / f"wheelhouse-aws-{hashlib.sha256(lock).hexdigest()[:12]}"
    assert path.is_dir(), f"{path} is missing: run `make setup`"
    return path


@pytest.fixture
def act_store(
    act_cache: Path,  # noqa: F811
    tmp_path: Path,
    secret_values: set[str],
    age_id: AgeIdentity,
    openbao: OpenBao,
) -> Callable[..., ActRun]:
    secret_values.update({openbao.token, stores.AWS_SECRET_KEY})

    def _run(inputs: dict[str, str], job_env: dict[str, str] | None = None) -> ActRun:
        secrets = {"AGE_KEY": age_id.secret, "VAULT_TOKEN": openbao.token}
        run = run_act(WORKFLOW, act_cache, tmp_path, inputs, secrets, job_env, (aws_wheelhouse(),))
        assert_no_secrets(run.output, secret_values)
        return run

    return _run


@pytest.mark.act
@pytest.mark.slow
def test_action_vault_sync_writes_then_writes_nothing_then_check_finds_drift(
    act_store: Callable[..., ActRun], encrypt: Callable[..., Path], openbao: OpenBao
) -> None:
    enc = str(encrypt(PLAIN))
    rest = f"apps/act-{uuid.uuid4().hex[:6]}"
    inputs = {"command": "vault-sync", "file": enc, "vault-addr": openbao.addr,
              "vault-path": f"secret/{rest}"}  # fmt: skip
    first = act_store(inputs)
    assert first.returncode == 0, first.output[-3000:]
    assert openbao.api("GET", f"secret/data/{rest}")["data"]["data"] == values_of(PLAIN)
    assert first.outputs()["changed"] == "true"
    again = act_store(inputs)
    assert again.returncode == 0, again.output[-3000:]
    assert again.outputs()["changed"] == "false"
    openbao.api("POST", f"secret/data/{rest}", {"data": {"APP_MODE": "ui-edit-act-1"}})
    check = act_store({**inputs, "check": "true"})
    assert check.returncode != 0
    assert "update  APP_MODE" in check.output, check.output[-4000:]
    assert check.outputs()["changed-keys"].endswith(",APP_MODE")


@pytest.mark.act
@pytest.mark.slow
def test_action_aws_sync_installs_boto3_and_writes_one_json_secret(
    act_store: Callable[..., ActRun], encrypt: Callable[..., Path], moto: Moto
) -> None:
    boto3: Any = pytest.importorskip("boto3")
    enc = str(encrypt(PLAIN))
    name = f"prod/act-{uuid.uuid4().hex[:6]}"
    run = act_store({"command": "aws-sync", "file": enc, "aws-secret-name": name}, moto.env())
    assert run.returncode == 0, run.output[-3000:]
    assert run.outputs()["changed"] == "true"
    sm = boto3.client(
        "secretsmanager", endpoint_url=moto.endpoint, region_name=stores.AWS_REGION,
        aws_access_key_id=stores.AWS_KEY_ID, aws_secret_access_key=stores.AWS_SECRET_KEY,
    )  # fmt: skip
    assert json.loads(sm.get_secret_value(SecretId=name)["SecretString"]) == values_of(PLAIN)
