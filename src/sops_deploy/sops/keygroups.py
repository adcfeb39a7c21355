"""A sops file's key groups, read from its metadata, and why each master key could not be
used — in words that hold no credential and none of sops's raw text.

sops stores the master keys under `sops:` (yaml/json/binary) or as flattened `sops_*`
lines (dotenv: `sops_kms__list_0__map_arn=…`), either at the top level (one group) or
under `key_groups` (several, with `shamir_threshold`). `groups_of` reads both shapes.
`reasons` turns sops's "Group N: FAILED / <key>: FAILED / - | …" report into one fixed
phrase per key (`_CAUSES`), plus what the environment lacks (`missing`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

AGE, AWS, VAULT, PGP, GCP, AZURE = "age", "aws_kms", "hc_vault", "pgp", "gcp_kms", "azure_kv"
# metadata key → kind, and what names one key of that kind
_KINDS = {"age": AGE, "kms": AWS, "hc_vault": VAULT, "pgp": PGP, "gcp_kms": GCP, "azure_kv": AZURE}
LABELS = {
    AGE: "age",
    AWS: "aws_kms",
    VAULT: "hc_vault transit",
    PGP: "pgp",
    GCP: "gcp_kms",
    AZURE: "azure_kv",
}


@dataclass(frozen=True)
class MasterKey:
    """One master key: its kind and what identifies it (recipient, ARN, transit URL,
    fingerprint, resource id, vault key URL); `role`/`profile` for AWS."""

    kind: str
    ident: str
    role: str = ""
    profile: str = ""

    @property
    def label(self) -> str:
        return f"{LABELS[self.kind]} {self.ident}"


def _ident(kind: str, entry: Mapping[str, object]) -> str:
    def get(name: str) -> str:
        return str(entry.get(name) or "")

    if kind == AGE:
        return get("recipient")
    if kind == AWS:
        return get("arn")
    if kind == VAULT:
        address = get("vault_address").rstrip("/")
        return f"{address}/v1/{get('engine_path')}/keys/{get('key_name')}"
    if kind == PGP:
        return get("fp")
    if kind == GCP:
        return get("resource_id")
    return f"{get('vault_url').rstrip('/')}/keys/{get('name')}/{get('version')}".rstrip("/")


def _group(meta: Mapping[str, object]) -> tuple[MasterKey, ...]:
    keys: list[MasterKey] = []
    for name, kind in _KINDS.items():
        entries = meta.get(name)
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                role, profile = str(entry.get("role") or ""), str(entry.get("aws_profile") or "")
                keys.append(MasterKey(kind, _ident(kind, entry), role, profile))
    return tuple(keys)


def groups_of(meta: Mapping[str, object]) -> tuple[tuple[MasterKey, ...], ...]:
    """The key groups of a file's `sops` metadata (top-level keys: one group)."""
    listed = meta.get("key_groups")
    if isinstance(listed, list) and listed:
        return tuple(_group(g) for g in listed if isinstance(g, dict))
    top = _group(meta)
    return (top,) if top else ()


_TOKEN = re.compile(r"(list|map)_(.*)")


def unflatten(lines: Iterable[bytes]) -> dict[str, object]:
    """The `sops` metadata of a dotenv file from its `sops_*` lines (sops's flattening:
    `__` between levels, `list_N` an index, `map_K` a key)."""
    root: dict[str, object] = {}
    for line in lines:
        name, _, value = line.decode("utf-8", "replace").partition("=")
        parts = name[len("sops_") :].split("__")
        node: object = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            match = _TOKEN.fullmatch(part) if i else None
            key: object = part
            if match is not None and match[1] == "list":
                key = int(match[2]) if match[2].isdigit() else match[2]
            elif match is not None:
                key = match[2]
            child: object = value.strip() if last else _container(parts[i + 1])
            node = _step(node, key, child)
    return root


def _container(next_part: str) -> object:
    return [] if next_part.startswith("list_") else {}


def _step(node: object, key: object, child: object) -> object:
    if isinstance(node, list) and isinstance(key, int):
        while len(node) <= key:
            node.append(None)
        if node[key] is None:
            node[key] = child
        return node[key]
    if isinstance(node, dict):
        return node.setdefault(str(key), child)
    return child  # a shape sops does not write: ignore the rest of the line


# What sops reports per key, reduced to a fixed phrase; first match wins.
_CAUSES: tuple[tuple[str, str], ...] = (
    (
        r"AssumeRoleWithWebIdentity|InvalidIdentityToken|web identity",
        "the web identity role "
        "was refused (check AWS_ROLE_ARN and the role's trust policy for this repository)",
    ),
    (
        r"get credentials|no EC2 IMDS role|NoCredentialProviders|failed to refresh cached "
        r"credentials",
        "no AWS credentials in the environment",
    ),
    (r"ExpiredToken", "the credentials have expired"),
    (r"AccessDenied|not authorized", "access denied (the credentials may not use this key)"),
    (
        r"UnrecognizedClient|InvalidClientTokenId|InvalidSignature|SignatureDoesNotMatch"
        r"|security token included in the request is invalid|StatusCode: 403",
        "the credentials were rejected",
    ),
    (r"NotFoundException|does not exist|not found", "the key was not found"),
    (r"DisabledException|is disabled|pending deletion", "the key is disabled"),
    (
        r"Code: 403|permission denied",
        "permission denied (token rejected, or its policy lacks transit decrypt on this key)",
    ),
    (r"Code: 400", "the server refused the request"),
    (
        r"connection refused|no such host|dial tcp|i/o timeout|context deadline|"
        r"network is unreachable|EOF",
        "the server could not be reached",
    ),
    (r"x509|certificate", "the server's TLS certificate was not trusted"),
    (
        r"no secret key|secret key not available|No secret key|could not decrypt data key "
        r"with PGP",
        "no secret key for it in the GnuPG keyring",
    ),
    (
        r"no identity matched|no age identity|failed to load age identities",
        "no age identity matches",
    ),
)
_KEY_LINE = re.compile(r"^\s{2}(\S.*?): FAILED\s*$")
_DETAIL = re.compile(r"^\s{4,}(?:- )?\|\s?(.*)$")


def sops_reasons(stderr: str) -> dict[str, str]:
    """For each key sops reported as FAILED, our fixed phrase for why (never sops's text)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stderr.splitlines():
        key = _KEY_LINE.match(line)
        if key is not None:
            current = found.setdefault(key[1], [])
            continue
        detail = _DETAIL.match(line)
        if detail is not None and current is not None:
            current.append(detail[1])
        elif line.strip():
            current = None if not line.startswith("    ") else current
    return {key: cause(" ".join(text)) for key, text in found.items()}


def cause(text: str) -> str:
    """The fixed phrase for sops's text about one key."""
    for pattern, phrase in _CAUSES:
        if re.search(pattern, text, re.IGNORECASE):
            return phrase
    return "sops could not use it"


def missing(kind: str, env: Mapping[str, str], home: Path | None) -> str | None:
    """What this environment lacks to use a key of `kind`, or None when something is there
    (credentials present; whether they work is sops's to find out)."""
    if kind == AWS:
        keys = env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")
        oidc = env.get("AWS_ROLE_ARN") and env.get("AWS_WEB_IDENTITY_TOKEN_FILE")
        files = [env.get("AWS_SHARED_CREDENTIALS_FILE"), env.get("AWS_CONFIG_FILE")]
        if home is not None:
            files += [str(home / ".aws" / "credentials"), str(home / ".aws" / "config")]
        has_file = any(f and _nonempty(Path(f)) for f in files)
        # instance metadata may hold a role, except on GitHub's hosted runners
        hosted = env.get("RUNNER_ENVIRONMENT") == "github-hosted"
        metadata = env.get("AWS_EC2_METADATA_DISABLED", "").lower() != "true" and not hosted
        if keys or oidc or has_file or env.get("AWS_PROFILE") or metadata:
            return None
        return "no AWS credentials in the environment"
    if kind == VAULT:
        token_file = home is not None and _nonempty(home / ".vault-token")
        return None if env.get("VAULT_TOKEN") or token_file else "VAULT_TOKEN not set"
    if kind == GCP:
        names = ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CREDENTIALS")
        adc = home / ".config/gcloud/application_default_credentials.json" if home else None
        if any(env.get(n) for n in (*names, "GOOGLE_OAUTH_ACCESS_TOKEN")) or (
            adc is not None and adc.is_file()
        ):
            return None
        return "no Google credentials in the environment"
    if kind == AZURE:
        if any(k.startswith("AZURE_") for k in env):
            return None
        return "no Azure credentials in the environment"
    return None


def _nonempty(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False
