"""Constants that flag parsing needs, in a module that imports nothing (fast `--help`)."""

DEFAULT_FILE = "secrets/.env.encrypted"
# The sops-deploy.yaml used when --config is not given, if it exists.
DEFAULT_CONFIG = "secrets/sops-deploy.yaml"
ENV_PREFIX = "SOPS_DEPLOY_"
# What reads the .env (see envfile/render.py).
FORMATS = ("compose", "dotenv", "shell", "docker", "systemd", "node", "raw", "files")
# init's key flags (repeatable): attribute, flag, metavar, help (see docs/keyless.md).
INIT_KEYS = (
    ("age_recipients", "--age", "AGE1…", "encrypt for this age recipient (no age key is made)"),
    ("kms", "--kms", "ARN", "encrypt for this AWS KMS key: CI needs no AGE_KEY (docs/keyless.md)"),
    ("hc_vault_transit", "--hc-vault-transit", "URI", "encrypt for this Vault/OpenBao transit "
     "key: https://VAULT/v1/transit/keys/NAME"),
    ("pgp", "--pgp", "FINGERPRINT", "encrypt for this PGP key"),
)  # fmt: skip
# Per-command defaults that differ from the option table's (inputs/table.py). A format of
# None means nobody named the reader: init asks (maintain/reader.py), doctor flags it.
COMMAND_DEFAULTS: dict[str, dict[str, object]] = {
    "init": {"remote_path": "~/app/.env", "format": None},
    "doctor": {"format": None},
}
