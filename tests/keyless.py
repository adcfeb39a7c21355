"""Shared by the key-backend tests: the real servers (moto, OpenBao) and a throwaway GnuPG
home, with helpers that encrypt a file for their keys through the real sops.

A test module takes the fixtures as `be, gnupg = keyless.be, keyless.gnupg`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sops_deploy.sops import backends
from tests import stores

PLAIN = "DATABASE_URL=postgres://app:Kms-Secret-Pw7@db/app\nAPI_TOKEN=tok_kms_4e3d2c1b0a\n"
ROLE = "arn:aws:iam::123456789012:role/deploy"
OIDC_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOm8vcjpyZWYifQ.c2lnbmF0dXJlLXRlc3Q"


@dataclass
class Backends:
    """The servers and a throwaway GnuPG home, with helpers that encrypt for them."""

    sops: str
    moto: stores.Moto
    bao: stores.OpenBao
    tmp: Path

    def aws(self, **extra: str) -> dict[str, str]:
        return {**self.moto.env(), **extra}

    def kms_key(self) -> str:
        import boto3

        client = boto3.client(
            "kms",
            endpoint_url=self.moto.endpoint,
            region_name=stores.AWS_REGION,
            aws_access_key_id=stores.AWS_KEY_ID,
            aws_secret_access_key=stores.AWS_SECRET_KEY,
        )
        return str(client.create_key()["KeyMetadata"]["Arn"])

    def transit_key(self, name: str = "sops") -> str:
        mounts = self.bao.api("GET", "sys/mounts")["data"]
        if "transit/" not in mounts:
            self.bao.enable("transit", "transit")
        self.bao.api("POST", f"transit/keys/{name}")
        return f"{self.bao.addr}/v1/transit/keys/{name}"

    def encrypt(self, flags: list[str], env: dict[str, str], name: str = "s.env.encrypted") -> Path:
        out = self.tmp / name
        proc = subprocess.run(
            [
                self.sops,
                "encrypt",
                "--input-type",
                "dotenv",
                "--output-type",
                "dotenv",
                *flags,
                "/dev/stdin",
            ],
            input=PLAIN.encode(),
            env={**clean_env(), **env},
            capture_output=True,
            check=False,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        out.write_bytes(proc.stdout)
        return out


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not backends.is_backend(k)}


@pytest.fixture
def be(
    sops_bin: str,
    moto: stores.Moto,
    openbao: stores.OpenBao,
    tmp_path: Path,
    secret_values: set[str],
) -> Backends:
    """The backends for one test; every credential is a secret the guard looks for."""
    pytest.importorskip("boto3")
    secret_values.update(
        {stores.AWS_KEY_ID, stores.AWS_SECRET_KEY, openbao.token, OIDC_JWT, "Kms-Secret-Pw7"}
    )
    secret_values.add("tok_kms_4e3d2c1b0a")
    return Backends(sops_bin, moto, openbao, tmp_path)


NO_AGE = {"AGE_KEY": ""}


def no_aws(be: Backends) -> dict[str, str]:
    """moto's environment minus the keys: nothing to sign a request with."""
    return be.aws(AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="")


@pytest.fixture
def gnupg(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A fresh GnuPG home with one passphrase-less key: (GNUPGHOME, fingerprint)."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = {**clean_env(), "GNUPGHOME": str(home)}
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "sops-deploy test <t@example.invalid>",
            "ed25519",
            "cert,sign",
            "never",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    listing = subprocess.run(
        ["gpg", "--batch", "--with-colons", "--list-keys"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    subprocess.run(
        ["gpg", "--batch", "--passphrase", "", "--quick-add-key", fpr, "cv25519", "encr", "never"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    yield home, fpr
    subprocess.run(
        ["gpgconf", "--kill", "all"], env=env, capture_output=True, check=False, timeout=30
    )
