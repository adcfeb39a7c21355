"""The files `sops-deploy init` writes into a repository, read with `importlib.resources`."""
