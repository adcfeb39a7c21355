"""The action under real `act` with no AGE_KEY: a KMS-encrypted file validates with the
temporary AWS credentials in the step's environment (moto server), and none of them
reaches act's output."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import keyless
from tests.keyless import Backends
from tests.support import assert_no_secrets
from tests.test_action import act_cache, run_act

be = keyless.be  # the fixture
cache = act_cache  # the fixture: the action's venv is built once per session


@pytest.mark.act
@pytest.mark.slow
def test_action_decrypts_with_kms_credentials_and_no_age_key(
    be: Backends, cache: Path, tmp_path: Path, secret_values: set[str]
) -> None:
    """validate through `uses: ./` with AWS credentials in the step's env and no age-key."""
    import boto3

    enc = be.encrypt(["--kms", be.kms_key()], be.aws())
    sts = boto3.client(
        "sts",
        endpoint_url=be.moto.endpoint,
        region_name="eu-west-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    creds = sts.assume_role(RoleArn=keyless.ROLE, RoleSessionName="act")["Credentials"]
    secrets = {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
    }
    secret_values.update(secrets.values())
    empty = be.moto.env()["AWS_CONFIG_FILE"]
    inputs = {"file": str(enc), "aws-endpoint": be.moto.endpoint, "aws-empty-file": empty}
    run = run_act("tests/workflows/keyless-test.yml", cache, tmp_path, inputs, secrets)
    assert run.returncode == 0, run.output[-4000:]
    assert "2 keys valid" in run.output
    assert_no_secrets(run.output, secret_values)
    # the nearest failing input: the same run without the credentials
    bare = run_act("tests/workflows/keyless-test.yml", cache, tmp_path, inputs, {})
    assert bare.returncode != 0
    assert "::error title=Decryption failed" in bare.output
    assert "no AWS credentials in the environment" in bare.output
    assert "aws-actions/configure-aws-credentials" in bare.output
    assert "id-token: write" in bare.output
