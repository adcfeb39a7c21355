"""The store servers themselves: OpenBao and moto start, answer, and keep to 127.0.0.1."""

from __future__ import annotations

import base64

import pytest

from tests.stores import Moto, OpenBao, http


def test_openbao_kv2_and_transit(openbao: OpenBao) -> None:
    openbao.api("POST", "secret/data/smoke", {"data": {"A": "1"}})
    assert openbao.api("GET", "secret/data/smoke")["data"]["data"] == {"A": "1"}
    openbao.enable("transit", "transit-smoke")
    openbao.api("POST", "transit-smoke/keys/k")
    plain = base64.b64encode(b"hello").decode()
    cipher = openbao.api("POST", "transit-smoke/encrypt/k", {"plaintext": plain})
    assert cipher["data"]["ciphertext"].startswith("vault:v1:")
    openbao.enable("kv-v2", "kv-smoke")
    assert "kv-smoke/" in openbao.api("GET", "sys/mounts")["data"]


def test_openbao_refuses_a_wrong_token(openbao: OpenBao) -> None:
    status, _ = http(
        "GET", f"{openbao.addr}/v1/secret/data/smoke", headers={"X-Vault-Token": "wrong"}
    )
    assert status == 403
    weak = openbao.create_token(["default"])
    status, _ = http("GET", f"{openbao.addr}/v1/secret/data/smoke", headers={"X-Vault-Token": weak})
    assert status == 403


def test_moto_serves_secrets_manager_kms_and_sts(
    moto: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3 = pytest.importorskip("boto3")
    for name in list(__import__("os").environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in moto.env().items():
        monkeypatch.setenv(name, value)
    sm = boto3.client("secretsmanager")
    assert sm.meta.endpoint_url == moto.endpoint
    sm.create_secret(Name="smoke", SecretString="{}")
    assert sm.get_secret_value(SecretId="smoke")["SecretString"] == "{}"
    kms = boto3.client("kms")
    assert kms.meta.endpoint_url == moto.endpoint
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    assert kms.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
    sts = boto3.client("sts")
    assert sts.meta.endpoint_url == moto.endpoint
    assert sts.get_caller_identity()["Account"]
    moto.reset()
    assert sm.list_secrets()["SecretList"] == []
