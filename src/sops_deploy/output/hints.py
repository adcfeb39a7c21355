"""Fixes in the words of the interface in use.

Hints are written once, naming options as CLI flags (`--host-key-fingerprint`); that is
the placeholder. On the command line they print as written; when running as the action
(the action sets `SOPS_DEPLOY_INTERFACE=action`), each flag that has an action input is
shown as that input (`host-key-fingerprint:`, `--mirror` as `tools-mirror:`), the name a
user edits in the workflow's `with:`. A flag without an input is left as it is.
"""

from __future__ import annotations

import re

INTERFACE_ENV = "SOPS_DEPLOY_INTERFACE"
ACTION = "action"
CLI = "cli"

# Flags whose action input has another name.
RENAMED = {
    "required": "required-keys",
    "mirror": "tools-mirror",
    "source": "tools-source",
    "allow-unverified": "allow-unverified-tools",
    "env": "environment",
    "path": "vault-path",
    "name": "aws-secret-name",
}
# Action inputs named like their flag (action.yml; a test keeps the two lists equal).
SAME_NAME = frozenset(
    {
        "host",
        "port",
        "user",
        "remote-path",
        "known-hosts",
        "host-key-fingerprint",
        "file",
        "schema",
        "public-keys",
        "format",
        "file-mode",
        "dry-run",
        "export-env",
        "sops-version",
        "age-version",
        "sops-sha256",
        "age-sha256",
        "config",
        "backup",
        "post-command",
        "post-command-timeout",
        "rollback-on-failure",
        "lock-timeout",
        "become",
        "become-sftp-server",
        "owner",
        "validate-command",
        "canary",
        "jump-host",
        "parallel",
        "fail-fast",
        "retries",
        "timeout",
        "adopt",
        "kms-key-id",
        "interpolate",
        "allow-empty",
        "repo",
        "github-environment",
        "dependabot",
        "keys",
        "prefix",
        "prune",
        "check",
    }
)
_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")


def interface(env: dict[str, str]) -> str:
    """`action` when the action started us, else `cli`."""
    return ACTION if env.get(INTERFACE_ENV) == ACTION else CLI


def action_input(flag: str) -> str | None:
    """The action input for `--flag` (without dashes), or None when it has none."""
    if flag in RENAMED:
        return RENAMED[flag]
    return flag if flag in SAME_NAME else None


def render(text: str, where: str) -> str:
    """`text` with its `--flags` named as `where` (cli or action) names them."""
    if where != ACTION or "--" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        name = action_input(match.group(1))
        return f"`{name}:`" if name else match.group(0)

    return _FLAG.sub(one, text)
