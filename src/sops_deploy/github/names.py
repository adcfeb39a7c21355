"""GitHub names and public keys: which keys may become secrets, and which are variables.

GitHub secret and variable names are `[A-Za-z0-9_]`, not starting with a digit or with
`GITHUB_`, and case-insensitive (GitHub stores them upper-cased). Every bad name is a
`Problem` (exit 4) naming the key and the fix, found before anything is written.

A key is *public* — an Actions variable rather than a secret — when sops stores it
unencrypted (its value in the encrypted file is not `ENC[...]`: `unencrypted_suffix`,
`unencrypted_regex`, ...) or the schema marks it `secret: false`. This module holds the
one small function that reads that from the encrypted file; the masking policy uses the
same definition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sops_deploy.envfile import Entry
from sops_deploy.errors import Problem

STATE_PREFIX = "SOPS_DEPLOY_SYNC"  # the tool's own state variable(s); never a user key
MAX_SECRET_BYTES = 48 * 1024
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=(.*)$")


def github_name(prefix: str, key: str) -> str:
    return (prefix + key).upper()


def name_problems(prefix: str, entries: Iterable[Entry]) -> list[Problem]:
    """Every key whose GitHub name would be refused, or would collide with another."""
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for e in entries:
        name = prefix + e.key

        def bad(rule: str, message: str, fix: str, e: Entry = e) -> None:
            problems.append(Problem(e.file, e.line, e.key, rule, message, fix))

        if not _NAME.match(name):
            bad(
                "github-name",
                f"{name!r} is not a valid GitHub secret name (letters, digits and _ only, "
                "not starting with a digit)",
                "rename the key (e.g. my-key → MY_KEY), or leave it out with --keys",
            )
        elif name.upper().startswith("GITHUB_"):
            bad(
                "github-name",
                f"{name} starts with GITHUB_, which GitHub reserves",
                "pass --prefix (e.g. --prefix APP_) or rename the key",
            )
        elif name.upper().startswith(STATE_PREFIX):
            bad(
                "github-name",
                f"{name} is the name sops-deploy keeps its sync state in",
                "rename the key or pass --prefix",
            )
        elif name.upper() in seen:
            bad(
                "github-name-collision",
                f"{name} and {seen[name.upper()]} are the same GitHub name (names ignore case)",
                "rename one of the keys",
            )
        elif len(e.value.encode("utf-8")) > MAX_SECRET_BYTES:
            bad(
                "github-size",
                f"the value is larger than GitHub's 48 KB limit ({len(e.value.encode())} bytes)",
                "store it elsewhere, or split it into several keys",
            )
        seen.setdefault(name.upper(), name)
    return problems
