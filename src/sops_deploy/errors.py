"""The exception hierarchy. Each family carries its exit code and a hint that says what to do.

Library code only raises these; `cli.main` is the single place that turns them into a
message and an exit code (commands return nothing: success is exit 0). An error whose
story the Reporter already told (per-host lines, the doctor's checks) sets `reported`, so
the boundary only maps it to its exit code. No message or hint may ever contain a secret
value.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_DRIFT = 3
EXIT_VALIDATION = 4
EXIT_DECRYPT = 5
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


@dataclass(frozen=True)
class Problem:
    """One located problem in an input file: where, which key, which rule, and how to fix it."""

    file: str
    line: int | None
    key: str | None
    rule: str
    message: str
    fix: str
    severity: str = "error"  # "error" or "warning"

    def location(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key}" if self.key else where

    def __str__(self) -> str:
        return f"{self.location()}: [{self.rule}] {self.message} — fix: {self.fix}"


class SopsDeployError(Exception):
    """Base of every error this tool raises on purpose."""

    exit_code = EXIT_RUNTIME
    title = "sops-deploy failed"
    reported = False  # True: the Reporter has shown it already; only the exit code is left

    def __init__(
        self, message: str, hint: str = "", *, file: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.file = file
        self.line = line

    def __str__(self) -> str:
        return self.message


class UsageError(SopsDeployError):
    """Bad flags, inputs or configuration (exit 2)."""

    exit_code = EXIT_USAGE
    title = "Invalid configuration"


class ToolError(SopsDeployError):
    """sops or age missing, unverifiable or of the wrong version (exit 2)."""

    exit_code = EXIT_USAGE
    title = "Tool problem"


class DecryptError(SopsDeployError):
    """sops could not decrypt the file (exit 5)."""

    exit_code = EXIT_DECRYPT
    title = "Decryption failed"


class ValidationError(SopsDeployError):
    """The decrypted secrets are malformed or incomplete (exit 4). Carries every problem."""

    exit_code = EXIT_VALIDATION
    title = "Validation failed"

    def __init__(self, problems: list[Problem], hint: str = "") -> None:
        errors = [p for p in problems if p.severity == "error"]
        first = errors[0] if errors else None
        super().__init__(
            f"{len(errors)} problem(s) in the secrets; nothing was deployed",
            hint
            or "fix each problem listed above, re-encrypt, and run `sops-deploy validate` "
            "(see README#faq-validation-failed)",
            file=first.file if first else None,
            line=first.line if first else None,
        )
        self.problems = problems


class RemoteError(SopsDeployError):
    """Network, SSH, SFTP or post-command failure (exit 1)."""

    exit_code = EXIT_RUNTIME
    title = "Remote operation failed"


class ConnectError(RemoteError):
    """The server could not be reached or did not speak SSH in time; safe to retry (exit 1)."""

    title = "Connection failed"


class HostKeyError(RemoteError):
    """The server's host key is unknown or changed; refused (exit 1)."""

    title = "Host key not trusted"


class HostsFailed(RemoteError):
    """At least one host failed; each was reported with its fix (exit 1)."""

    title = "Deploy failed on some hosts"
    reported = True


class DriftFound(SopsDeployError):
    """`check` found at least one host that differs from the source of truth (exit 3)."""

    exit_code = EXIT_DRIFT
    title = "Drift found"
    reported = True


class ChecksFailed(SopsDeployError):
    """`doctor` found at least one failing check; each was shown with its fix (exit 1)."""

    title = "Checks failed"
    reported = True


class GitHubError(SopsDeployError):
    """The GitHub API refused or failed a request (exit 1); the hint names the fix."""

    exit_code = EXIT_RUNTIME
    title = "GitHub API request failed"


class StoreError(SopsDeployError):
    """Vault/OpenBao or AWS Secrets Manager refused or failed a request (exit 1)."""

    exit_code = EXIT_RUNTIME
    title = "Secret store request failed"
