"""Who runs this deploy, where, from which commit and run, and when: one helper.

The lock file and the audit line record these; the front door builds a `RunInfo` from the
environment it was given, so nothing below it looks at the process environment. The
commit is looked up (`git rev-parse HEAD`, with the explicit child environment) only when
asked for, and once.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RunInfo:
    """The facts about this run that a lock or an audit line names (never a secret)."""

    user: str  # the local login name (USER, LOGNAME, else the account database)
    host: str  # this machine's host name
    actor: str  # GITHUB_ACTOR on GitHub, else `user`
    run_id: str | None = None  # GITHUB_RUN_ID
    run_url: str | None = None  # the workflow run's page
    github_sha: str | None = None  # GITHUB_SHA
    child_env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def commit(self) -> str | None:
        """The source commit: GITHUB_SHA, else `git rev-parse HEAD` here, else None."""
        return self.github_sha or _git_head(tuple(sorted(self.child_env.items())))


def from_environ(environ: Mapping[str, str], child_env: Mapping[str, str]) -> RunInfo:
    """The run as `environ` (the front door's) describes it; git runs in `child_env`."""
    user = environ.get("USER") or environ.get("LOGNAME") or _account_name()
    parts = [environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    return RunInfo(
        user=user,
        host=os.uname().nodename,  # what socket.gethostname() returns, without `socket`
        actor=environ.get("GITHUB_ACTOR") or user,
        run_id=environ.get("GITHUB_RUN_ID") or None,
        run_url=f"{parts[0]}/{parts[1]}/actions/runs/{parts[2]}" if all(parts) else None,
        github_sha=environ.get("GITHUB_SHA") or None,
        child_env=dict(child_env),
    )


def now() -> str:
    """The current UTC time as the audit line and the lock write it."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _account_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return "unknown"


@functools.cache
def _git_head(env: tuple[tuple[str, str], ...]) -> str | None:
    import subprocess

    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            env=dict(env),
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None
