"""A store secret as the source of a deploy: `vault://MOUNT/PATH`, `aws-sm://NAME`.

Read-only: the secret's key/value map arrives as the plaintext of a JSON source (what
sops decrypts a `.json` file to), so the plan checks it exactly as it checks an encrypted
file — parse, lint, schema, required keys, formats and masking (`plan.build_plan`).
Access comes from the front door (`options.py` → `Settings.stores`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sops_deploy.errors import StoreError, UsageError
from sops_deploy.sops.runner import EncryptedFile

if TYPE_CHECKING:
    from sops_deploy.inputs.settings import Settings

VAULT_SCHEME, AWS_SCHEME = "vault://", "aws-sm://"


class StoreAccess:
    """The stores the sources name: Vault access (None: no vault:// source) and AWS's.
    A plain class: this module loads on every decrypt, so it defines no dataclass."""

    __slots__ = ("aws", "vault")

    def __init__(self, vault: Any = None, aws: Any = None) -> None:
        self.vault = vault  # vault.VaultAccess (its token kept out of any repr)
        self.aws = aws  # aws.AwsAccess

    def __repr__(self) -> str:
        return f"StoreAccess(vault={self.vault is not None}, aws={self.aws!r})"

    def secret_texts(self) -> list[str]:
        token = getattr(self.vault, "token", "")
        return [token] if token else []


def is_store(path: str) -> bool:
    return path.startswith((VAULT_SCHEME, AWS_SCHEME))


def access(
    files: tuple[str, ...], environ: Any, timeout: float, retries: int
) -> StoreAccess | None:
    """What the store sources need, from the environment (None when every source is a file)."""
    if not any(is_store(f) for f in files):
        return None
    vault_access = aws_access = None
    if any(f.startswith(VAULT_SCHEME) for f in files):
        from sops_deploy.stores import vault

        vault_access = vault.access(environ, timeout)
    if any(f.startswith(AWS_SCHEME) for f in files):
        from sops_deploy.stores import aws

        aws_access = aws.AwsAccess(timeout, retries)
    return StoreAccess(vault_access, aws_access)


def read(url: str, stores: StoreAccess | None) -> tuple[EncryptedFile, bytes]:
    """The secret at `url` as (a JSON source, its plaintext)."""
    if stores is None:
        raise UsageError(f"{url}: a store source needs its access", "")
    if url.startswith(VAULT_SCHEME):
        values = _vault(url, url.removeprefix(VAULT_SCHEME), stores.vault)
    else:
        values = _aws(url, url.removeprefix(AWS_SCHEME), stores.aws)
    if not isinstance(values, dict):
        raise StoreError(
            f"{url} does not hold a JSON object of keys",
            "store the secret as key/value pairs (what vault-sync / aws-sync write)",
        )
    return EncryptedFile(url, "json", ()), json.dumps(values, ensure_ascii=False).encode()


def _vault(url: str, path: str, access: Any) -> Any:
    from sops_deploy.stores import vault

    secret = vault.VaultSecret(vault.Client(access), path)
    current = secret.read()
    if not current.exists:
        raise StoreError(
            f"{url}: no secret there", "check the path (MOUNT/PATH) and VAULT_NAMESPACE"
        )
    return dict(current.values)


def _aws(url: str, name: str, access: Any) -> Any:
    from sops_deploy.stores import aws

    secret = aws.AwsSecret(aws.client(access), name)
    got = secret.call("get_secret_value", SecretId=name)
    if got is None:
        raise StoreError(f"{url}: no such secret", "check the name (or ARN) and AWS_REGION")
    try:
        return json.loads(got.get("SecretString") or "null")
    except ValueError:
        return None


def read_all(settings: Settings, sops_bin: str = "") -> list[tuple[EncryptedFile, bytes]]:
    """Every source of `settings.files`, in order: encrypted files decrypted by sops (each
    inspected first, so a missing file fails before any decryption), store secrets read."""
    from sops_deploy.sops import runner, tools

    found = [path if is_store(path) else runner.inspect(path) for path in settings.files]
    out = []
    for item in found:
        if isinstance(item, str):
            out.append(read(item, settings.stores))
            continue
        sops_bin = sops_bin or tools.find_sops(settings.tools)
        out.append((item, runner.decrypt(sops_bin, item, settings.age)))
    return out
