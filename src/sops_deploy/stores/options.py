"""The rows vault-sync and aws-sync add to the option table (`inputs/table.py`), as the
keyword arguments of its `Option` (this module imports nothing, so the table imports it).
Their `sops-deploy.yaml` side is the environment's `sync:` section (`syncconfig.py`)."""

from __future__ import annotations

from typing import Any

ROWS: tuple[dict[str, Any], ...] = (
    {"attr": "store_path", "flag": "--path", "env": ("VAULT_PATH",), "metavar": "MOUNT/PATH",
     "help": "the KV v2 secret, e.g. secret/apps/web (default: the environment's sync: list)"},
    {"attr": "store_name", "flag": "--name", "env": ("AWS_SECRET_NAME",), "metavar": "NAME",
     "help": "the Secrets Manager secret, a name or ARN (default: the sync: list)"},
    {"attr": "kms_key_id", "flag": "--kms-key-id", "env": ("KMS_KEY_ID",), "metavar": "KEY",
     "help": "the KMS key (ID, ARN or alias) that encrypts the secret"},
    {"attr": "adopt", "flag": "--adopt", "env": ("ADOPT",), "kind": "bool", "default": False,
     "help": "take over a secret sops-deploy did not create"},
    # --keys/--prefix as github-sync's, but never from its `github:` section of the file
    {"attr": "store_keys", "flag": "--keys", "env": ("KEYS",), "kind": "list", "default": (),
     "metavar": "K1,K2|GLOB", "help": "the keys to sync (default all)"},
    {"attr": "store_prefix", "flag": "--prefix", "env": ("PREFIX",), "default": "",
     "metavar": "P", "help": "store each key as P + key"},
    {"attr": "sync", "flag": None, "yaml": "sync", "kind": "sync",
     "help": "sops-deploy.yaml only: the environment's store secrets"},
)  # fmt: skip
# The options both commands share (the last, `sync`, is sops-deploy.yaml's alone).
STORE_SYNC = ("store_keys", "store_prefix", "dry_run", "check", "adopt", "timeout", "sync")
# Each command's own options, after the source and config-file ones (inputs/table.py).
COMMANDS = {
    "vault-sync": (*STORE_SYNC, "store_path"),
    "aws-sync": (*STORE_SYNC, "store_name", "kms_key_id", "retries"),
}
