"""The master keys a maintainer names: which kind each one is, and how `.sops.yaml` records it.

`init --age/--kms/--hc-vault-transit/--pgp` and `recipients add|remove KEY` speak of keys
by what identifies them: an age recipient (`age1…`, `ssh-ed25519 …`), an AWS KMS key ARN,
a Vault/OpenBao transit key URI (`https://vault:8200/v1/transit/keys/sops`), a PGP
fingerprint (40 hex digits), a GCP KMS resource id or an Azure Key Vault key URL.
`.sops.yaml` keeps each kind under its own key of a creation rule (a comma-separated list):
all of them form one key group, so any one of them decrypts.
"""

from __future__ import annotations

import re

from sops_deploy.errors import UsageError
from sops_deploy.sops import agekey

# .sops.yaml key → (what it holds, how one looks)
KINDS: dict[str, tuple[str, re.Pattern[str]]] = {
    "kms": ("an AWS KMS key ARN", re.compile(r"arn:aws[\w-]*:kms:[\w-]+:\d{12}:(key|alias)/\S+")),
    "hc_vault_transit_uri": (
        "a Vault/OpenBao transit key URI",
        re.compile(r"https?://[^\s/]+(/[^\s]*)?/v1/[^\s]+/keys/[^\s/]+"),
    ),
    "pgp": ("a PGP fingerprint", re.compile(r"[0-9A-Fa-f]{40}")),
    "gcp_kms": (
        "a GCP KMS key resource id",
        re.compile(r"projects/[^/\s]+/locations/[^/\s]+/keyRings/[^/\s]+/cryptoKeys/[^/\s]+"),
    ),
    "azure_keyvault": (
        "an Azure Key Vault key URL",
        re.compile(r"https://[^\s/]+\.vault\.azure\.net/keys/[^\s/]+/\w+"),
    ),
}
FLAGS = {
    "age": "--age",
    "kms": "--kms",
    "hc_vault_transit_uri": "--hc-vault-transit",
    "pgp": "--pgp",
}


def kind_of(key: str) -> str:
    """The `.sops.yaml` key that records `key` (`age`, `kms`, …); a UsageError if none."""
    text = key.strip()
    if text.startswith(("age1", "ssh-ed25519 ", "ssh-rsa ")):
        agekey.check_recipient(text)
        return "age"
    for name, (_, pattern) in KINDS.items():
        if pattern.fullmatch(text):
            return name
    raise UsageError(
        f"{_short(text)} is not a key sops-deploy knows",
        "pass an age recipient (age1…), an AWS KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), "
        "a transit key URI (https://VAULT/v1/transit/keys/NAME), a 40-digit PGP fingerprint, "
        "a GCP KMS resource id (projects/…/cryptoKeys/…) or an Azure Key Vault key URL",
    )


def normal(kind: str, key: str) -> str:
    """`key` as `.sops.yaml` and sops's metadata write it (a fingerprint upper-cased)."""
    key = key.strip()
    return key.upper() if kind == "pgp" else key


def check(kind: str, key: str) -> str:
    """`key` checked to be of `kind` (as given with that kind's flag), normalised."""
    what = KINDS[kind][0] if kind in KINDS else "an age recipient"
    try:
        found = kind_of(key)
    except UsageError as exc:
        if kind == "age":
            raise
        raise UsageError(f"{FLAGS.get(kind, kind)} {_short(key)}: not {what}", exc.hint) from None
    if found != kind:
        raise UsageError(
            f"{FLAGS.get(kind, kind)} {_short(key)}: not {what}",
            f"pass it with {FLAGS.get(found, found)} instead, or check it",
        )
    return normal(kind, key)


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "…"


def split(value: object) -> list[str]:
    """A `.sops.yaml` key list: a comma-separated string or a YAML list."""
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    if isinstance(value, list):
        return [str(p).strip() for p in value if str(p).strip()]
    return []
