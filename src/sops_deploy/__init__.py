"""sops-deploy: one SOPS + age encrypted file in git becomes the `.env` on your servers."""

__version__ = "0.1.0"
