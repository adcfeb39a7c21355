"""`--validate-command`: a check of the new file on the server before it replaces the old
one (like Ansible's `validate=`). It runs after the temp file is written (its final mode
and owner set) and before the swap, in the file's directory, with `%s` replaced by the
temp file's path (shell-quoted); with --become under `sudo -n`, like every command. A
non-zero exit (or the time limit, --post-command-timeout) stops the deploy: the old file
stays byte for byte, the temp file is removed, and the command's exit status and output
are reported (masked by the Reporter, cut after masking).
"""

from __future__ import annotations

import posixpath
import shlex

from sops_deploy.errors import RemoteError
from sops_deploy.remote.connection import Connection
from sops_deploy.remote.postcommand import CommandRun, run_command

LABEL = "validate-command"


def command_for(template: str, temp: str) -> str:
    """`template` with each `%s` replaced by the shell-quoted path of the temp file."""
    return template.replace("%s", shlex.quote(temp))


def validate(conn: Connection, temp: str, template: str, timeout: float) -> CommandRun:
    """Run the validate-command on `temp`, in its directory; its exit status and output."""
    directory = posixpath.dirname(temp) or "/"
    return run_command(conn, directory, command_for(template, temp), timeout, LABEL)


def failed(conn: Connection, path: str, run: CommandRun) -> RemoteError:
    return RemoteError(
        f"{conn.spec}: {run.describe()}: the new {path} did not pass it, so it was not "
        "put in place; the old file is untouched",
        "read the command's output above, fix the secrets (or --validate-command) and deploy again",
    )
