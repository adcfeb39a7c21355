"""The checks of the server operations' values (docs/server-operations.md): --owner and
--validate-command, in the words of their flags."""

from __future__ import annotations

import re

from sops_deploy.errors import UsageError


def check_validate_command(command: str) -> str:
    """A --validate-command: one shell command naming the temp file as `%s`."""
    if "\x00" in command or not command.strip():
        raise UsageError(
            "--validate-command is empty or contains a NUL character",
            "pass a command that checks the new file, e.g. 'grep -q ^DB_URL= %s'",
        )
    if "%s" not in command:
        raise UsageError(
            "--validate-command does not name the new file: it has no %s",
            "write %s where the path of the new file goes, e.g. 'grep -q ^DB_URL= %s'",
        )
    return command


def check_owner(text: str) -> str:
    """A --owner USER:GROUP (names or numeric ids, either part may be left out)."""
    user, _, group = text.partition(":")
    good = re.compile(r"^(?:[0-9]+|[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?)$")
    if not (user or group) or any(p and not good.match(p) for p in (user, group)):
        raise UsageError(
            f"--owner {text!r} is not USER:GROUP",
            "pass --owner app:app, --owner 1000:1000, --owner app or --owner :app",
        )
    return text
