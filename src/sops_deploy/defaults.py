"""Constants that flag parsing needs, in a module that imports nothing (fast `--help`)."""

DEFAULT_FILE = "secrets/.env.encrypted"
# The sops-deploy.yaml used when --config is not given, if it exists.
DEFAULT_CONFIG = "secrets/sops-deploy.yaml"
ENV_PREFIX = "SOPS_DEPLOY_"
# What reads the .env (see envfile/render.py).
FORMATS = ("compose", "dotenv", "shell", "docker", "systemd", "node", "raw", "files")
