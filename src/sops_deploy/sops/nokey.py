"""Why no key could decrypt a file (sops exit 128), key group by key group, and the fix in
the words of the interface in use.

Each master key of the file (`keygroups`) gets one reason: what the environment lacks
(`keygroups.missing`), else the fixed phrase for what sops reported (`sops_reasons`);
age recipients say which age key was given. Nothing here quotes sops's stderr or any
credential: the reasons are this module's own words.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from sops_deploy.errors import UsageError
from sops_deploy.sops import keygroups
from sops_deploy.sops.keygroups import AGE, AWS, AZURE, GCP, PGP, VAULT, MasterKey


class AgeKeySource(Protocol):
    """What this module reads of `sops.AgeKeySource` (sops imports this module)."""

    @property
    def base(self) -> dict[str, str]: ...
    @property
    def interface(self) -> str: ...
    @property
    def ssh_key(self) -> str | None: ...
    @property
    def ssh_key_file(self) -> str | None: ...

    def child_env(self) -> dict[str, str]: ...
    def key_text(self) -> str | None: ...
    @property
    def given(self) -> bool: ...
    @property
    def key_cmd(self) -> str | None: ...
    @property
    def ssh_source(self) -> str: ...


class EncryptedFile(Protocol):
    """What this module reads of `sops.EncryptedFile`."""

    @property
    def path(self) -> str: ...
    @property
    def groups(self) -> tuple[tuple[MasterKey, ...], ...]: ...


DOCS = "docs/keyless.md"
AGE_FIX = (
    "set AGE_KEY to a private key whose public key is one of the age recipients above (or "
    "SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD, --age-key-file), or, on a machine "
    "that can decrypt, add your recipient to .sops.yaml and run `sops updatekeys {file}` "
    "and commit the result (see README#faq-no-key-could-decrypt)"
)
_FIXES: dict[str, dict[str, str]] = {
    AWS: {
        "action": "add a step `uses: aws-actions/configure-aws-credentials` with "
        "`role-to-assume:` (a role allowed kms:Decrypt on the key) and `aws-region:` before "
        f"this step, and `permissions: id-token: write` in the job (see {DOCS})",
        "cli": "export AWS credentials for sops: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
        "(and AWS_SESSION_TOKEN), or AWS_PROFILE, or AWS_ROLE_ARN with "
        f"AWS_WEB_IDENTITY_TOKEN_FILE; a principal allowed kms:Decrypt on the key (see {DOCS})",
    },
    VAULT: {
        "action": "pass a Vault token to this step as `env: VAULT_TOKEN:` (e.g. from "
        "hashicorp/vault-action's JWT login), whose policy allows `update` on "
        f"TRANSIT/decrypt/KEY (see {DOCS}#vault-and-openbao-transit)",
        "cli": "export VAULT_TOKEN (or `bao login` / `vault login`), a token whose policy "
        f"allows `update` on TRANSIT/decrypt/KEY (see {DOCS}#vault-and-openbao-transit)",
    },
    PGP: {
        "action": "import the secret key in an earlier step (`gpg --batch --import` from a "
        "secret) so this step's GNUPGHOME has it",
        "cli": "import the secret key into your GnuPG keyring (`gpg --import`), or point "
        "GNUPGHOME at the keyring that has it",
    },
    GCP: {
        "action": "add `uses: google-github-actions/auth` (workload identity) before this step",
        "cli": "set GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`",
    },
    AZURE: {
        "action": "add `uses: azure/login` before this step, or set AZURE_CLIENT_ID, "
        "AZURE_TENANT_ID and AZURE_CLIENT_SECRET in its env",
        "cli": "set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET, or `az login`",
    },
}


def _home(key: AgeKeySource) -> Path | None:
    home = key.base.get("HOME")
    return Path(home) if home else None


def age_detail(key: AgeKeySource, recipient: str | None = None) -> str:
    """Why the age identities at hand did not open an age recipient."""
    from sops_deploy.sops import agekey, sshage

    if recipient is not None and sshage.is_ssh_recipient(recipient):
        if key.ssh_key or key.ssh_key_file:
            return f"{key.ssh_source} is not this SSH key"
        return "SSH_PRIVATE_KEY not set"
    if key.given:
        text = key.key_text()
        try:
            mine = ", ".join(agekey.recipients_of(text)) if text else "(unreadable key file)"
        except UsageError as exc:
            mine = f"(not a valid age key: {exc.message})"
        return f"the given age key's public key is {mine}"
    if key.key_cmd:
        return "SOPS_AGE_KEY_CMD gave no key for it"
    return "AGE_KEY not set"


def reason(master: MasterKey, key: AgeKeySource, reported: Mapping[str, str]) -> str:
    """Why `master` could not be used here: what is missing, else what sops reported."""
    env = key.child_env()
    if master.kind == AGE:
        return age_detail(key, master.ident)
    lacking = keygroups.missing(master.kind, env, _home(key))
    if lacking is not None:
        return lacking
    return reported.get(master.ident, "sops could not use it")


def explain(enc: EncryptedFile, key: AgeKeySource, stderr: str) -> tuple[str, str]:
    """The message part after "no key could decrypt this file." and the fix."""
    if not enc.groups:
        return "the file lists no master key at all", AGE_FIX.format(file=enc.path)
    reported = keygroups.sops_reasons(stderr)
    parts = []
    for number, group in enumerate(enc.groups, 1):
        ages = [m for m in group if m.kind == AGE]
        items = []
        if ages:
            details = {age_detail(key, m.ident) for m in ages}
            listed = ", ".join(m.ident for m in ages)
            items.append(f"age {listed}: {'; '.join(sorted(details))}")
        items += [f"{m.label}: {reason(m, key, reported)}" for m in group if m.kind != AGE]
        prefix = f"key group {number}: " if len(enc.groups) > 1 else ""
        parts.append(prefix + "; ".join(items))
    kinds = [
        k
        for k in (AGE, AWS, VAULT, PGP, GCP, AZURE)
        if any(m.kind == k for g in enc.groups for m in g)
    ]
    fixes = [
        AGE_FIX.format(file=enc.path) if k == AGE else fix_for(k, key.interface, enc.groups)
        for k in kinds
    ]
    return " | ".join(parts), " — or ".join(fixes)


def fix_for(kind: str, interface: str, groups: tuple[tuple[MasterKey, ...], ...]) -> str:
    """The fix for a key of `kind` (not age) in the words of `interface` (action or cli)."""
    text = _FIXES[kind]["action" if interface == "action" else "cli"]
    if kind == VAULT:
        key = next((m for g in groups for m in g if m.kind == VAULT), None)
        if key is not None and "/v1/" in key.ident:
            engine, _, name = key.ident.split("/v1/", 1)[1].partition("/keys/")
            text = text.replace("TRANSIT/decrypt/KEY", f"{engine}/decrypt/{name}")
    return text
