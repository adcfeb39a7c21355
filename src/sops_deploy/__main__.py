"""`python -m sops_deploy` runs the CLI."""

from sops_deploy.cli import entrypoint

if __name__ == "__main__":
    entrypoint()
