"""`sops-deploy vault-sync` and `aws-sync`: decrypt and check the file (as github-sync
does, with its selection rules), then make each target secret hold the selected keys.

The targets are `--path MOUNT/PATH` / `--name NAME`, or, without them, the environment's
`sync: {vault: [...], aws-secrets-manager: [...]}` list in sops-deploy.yaml, each with its
own `keys` and `prefix`. Credentials come from the front door only (`options.py`):
VAULT_ADDR/VAULT_TOKEN/VAULT_NAMESPACE, and boto3's standard AWS chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sops_deploy.errors import UsageError
from sops_deploy.inputs.settings import Settings
from sops_deploy.output.reporter import Reporter
from sops_deploy.stores.sync import SyncOptions
from sops_deploy.stores.syncconfig import SyncTarget

VAULT, AWS = "vault", "aws-secrets-manager"  # the kinds of `sync:` in sops-deploy.yaml


@dataclass(frozen=True)
class StoreSyncRequest:
    command: str  # vault-sync | aws-sync
    settings: Settings
    options: SyncOptions
    targets: tuple[SyncTarget, ...]
    access: Any = field(repr=False)  # vault.VaultAccess | aws.AwsAccess


def request(
    command: str, v: Mapping[str, Any], environ: Mapping[str, str], settings: Settings
) -> StoreSyncRequest:
    """The request from resolved values: flags first, else the environment's `sync:` list."""
    check, dry_run = bool(v["check"]), bool(v["dry_run"])
    if check and dry_run:
        raise UsageError("--check and --dry-run both only look", "pass one of them")
    opts = SyncOptions(dry_run=dry_run, check=check, adopt=bool(v["adopt"]))
    keys, prefix = tuple(v["store_keys"]), v["store_prefix"] or ""
    kind, flag = (VAULT, "--path") if command == "vault-sync" else (AWS, "--name")
    given = v["store_path"] if command == "vault-sync" else v["store_name"]
    kms = v.get("kms_key_id")
    if given:
        targets: tuple[SyncTarget, ...] = (SyncTarget(given, keys, prefix, kms),)
    else:
        listed = (v.get("sync") or {}).get(kind, ())
        targets = tuple(
            SyncTarget(t.where, keys or t.keys, prefix or t.prefix, kms or t.kms_key_id, t.line)
            for t in listed
        )
    if not targets:
        raise UsageError(
            f"no {kind} secret given",
            f"pass {flag} (or list it under `sync: {kind}:` of the environment in "
            "sops-deploy.yaml and pass --env NAME)",
        )
    if command == "vault-sync":
        from sops_deploy.stores import vault

        access: Any = vault.access(environ, v["timeout"])
    else:
        from sops_deploy.stores import aws

        access = aws.AwsAccess(v["timeout"], v["retries"])
    return StoreSyncRequest(command, settings, opts, targets, access)


def cmd_store_sync(req: StoreSyncRequest, reporter: Reporter) -> None:
    from sops_deploy.github.command import load_checked, select, source_id
    from sops_deploy.stores import sync

    token = getattr(req.access, "token", "")
    if token:
        reporter.mask_keys([token])
    settings = req.settings
    if settings.format == "raw":
        raise UsageError("--format raw has no keys to sync", "use a dotenv, yaml or json file")
    _, secrets, _ = load_checked(settings, reporter, "")  # sops found when a file needs it
    source = source_id(settings, "")
    outcomes = []
    for target in req.targets:
        chosen = select(secrets, target.keys)
        wanted = {target.prefix + e.key: e.value for e in chosen}
        outcomes.append(sync.run(_store(req, target), wanted, req.options, source, reporter))
    sync.finish(reporter, req.options.mode, outcomes)


def _store(req: StoreSyncRequest, target: SyncTarget) -> Any:
    if req.command == "vault-sync":
        from sops_deploy.stores import vault

        return vault.VaultSecret(vault.Client(req.access), target.where)
    from sops_deploy.stores import aws

    return aws.AwsSecret(aws.client(req.access), target.where, target.kms_key_id)
