"""One target on one connected host: look (before the plan is ready), then compare
(`check`, `diff`, `--dry-run`) or deliver — a file through `remote.transaction`, a
`files` directory through `remote.filesdir` — and the `HostResult` that tells it, by key
name only. `deploy.py` opens the connection and walks the targets; this module decides
nothing about which targets or hosts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sops_deploy import envfile
from sops_deploy.errors import SopsDeployError
from sops_deploy.inputs.runinfo import RunInfo
from sops_deploy.inputs.settings import Settings, Target
from sops_deploy.plan.targets import TargetPlan

if TYPE_CHECKING:
    from sops_deploy.remote.atomic import FileState
    from sops_deploy.remote.audit import Changes
    from sops_deploy.remote.connection import Connection
    from sops_deploy.remote.filesdir import DirDelivery
    from sops_deploy.remote.postcommand import CommandRun
    from sops_deploy.remote.transaction import Delivery

UNPARSEABLE = "(server file does not parse as dotenv)"


@dataclass
class HostResult:
    """The outcome for one target on one host. Key names only; never a value."""

    host: str
    status: str  # changed | unchanged | would-change | in-sync | drift | failed | skipped
    path: str = ""
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    mode_before: int | None = None
    mode_after: int | None = None
    error: SopsDeployError | None = None
    seconds: float = 0.0
    backup: str | None = None
    commands: list[CommandRun] = field(default_factory=list)
    rolled_back: bool = False
    note: str = ""  # why a host was skipped
    target: str = ""  # the target's label when sops-deploy.yaml lists `targets:`
    format: str = ""

    @property
    def why(self) -> str:
        """The error's message without the host it starts with (the line names the host)."""
        message = self.error.message if self.error is not None else ""
        return message.removeprefix(f"{self.host}: ")

    @property
    def reason(self) -> str:
        """One line for the result table: the error, the skip, or what differs. No values."""
        if self.error is not None:
            return self.error.message
        if self.note:
            return self.note
        parts = [
            f"{label}: {_names(keys)}"
            for label, keys in (
                ("added", self.added),
                ("removed", self.removed),
                ("changed", self.changed),
            )
            if keys
        ]
        if self.mode_drift and self.mode_before is not None and self.mode_after is not None:
            parts.append(f"mode: {self.mode_before:04o} (want {self.mode_after:04o})")
        return "; ".join(parts)

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def mode_drift(self) -> bool:
        return self.mode_before is not None and self.mode_before != self.mode_after


def _names(keys: list[str], shown: int = 10) -> str:
    """Key names for one table cell: the first `shown`, then how many more."""
    if len(keys) <= shown:
        return ", ".join(keys)
    return f"{', '.join(keys[:shown])} … and {len(keys) - shown} more"


def look(
    conn: Connection, settings: Settings, target: Target, result: HostResult
) -> FileState | None:
    """What can be known before the plan: the path, and that it is usable (a file target
    in a compare mode is read now)."""
    from sops_deploy.remote import atomic, filesdir

    result.path = conn.resolve(target.remote_path)
    if target.format == "files":
        filesdir.check_directory(conn, result.path)
        return None
    writing = settings.command == "deploy" and not settings.dry_run
    # A directory or symlink fails now; when writing, the file is read under the lock.
    state = atomic.current(
        conn, result.path, follow_symlinks=settings.follow_symlinks, read=not writing
    )
    if writing:
        return None  # the transaction locks the path as given, then follows it
    result.path = state.path
    return state


def act(
    conn: Connection,
    settings: Settings,
    plan: TargetPlan,
    current: FileState | None,
    result: HostResult,
    run: RunInfo,
    warn: Callable[[str], None],
) -> None:
    """Compare with, or deliver, one target (after `look`): `settings.command` says which."""
    command = settings.command
    writing = command == "deploy" and not settings.dry_run
    if plan.target.format == "files":
        if writing:
            _deliver_files(conn, settings, plan, result, run, warn)
        else:
            _compare_files(conn, plan, command, result)
    elif writing:
        _deliver(settings, plan, conn, result, run, warn)
    elif current is not None:
        _compare(plan, current, command, result)


def _status(result: HostResult, command: str, same: bool) -> None:
    if command in ("check", "diff"):
        result.status = "in-sync" if same else "drift"
    else:
        result.status = "unchanged" if same else "would-change"


def _compare(plan: TargetPlan, current: FileState, command: str, result: HostResult) -> None:
    _record(result, diff(plan, current.content))
    result.mode_before, result.mode_after = current.mode, plan.target.file_mode
    same_mode = current.mode == plan.target.file_mode
    if command in ("check", "diff"):
        keys_same = not (result.added or result.removed or result.changed)
        _status(result, command, keys_same and same_mode)
    else:
        _status(result, command, current.content == plan.content and same_mode)


def _compare_files(conn: Connection, plan: TargetPlan, command: str, result: HostResult) -> None:
    from sops_deploy.remote import filesdir

    state = filesdir.read_state(conn, result.path, list(plan.files))
    plan.read_back.values((name, f.content) for name, f in state.files.items())
    changes = state.changes(plan.files, plan.target.file_mode)
    _record(result, changes)
    wrong = state.mode_drift(plan.files, plan.target.file_mode)
    result.mode_after = plan.target.file_mode
    result.mode_before = plan.target.file_mode if wrong is None else wrong
    _status(result, command, not (changes.added or changes.removed or changes.changed))


def _deliver_files(
    conn: Connection,
    settings: Settings,
    plan: TargetPlan,
    result: HostResult,
    run: RunInfo,
    warn: Callable[[str], None],
) -> None:
    from sops_deploy.remote import filesdir

    target = plan.target
    delivery = filesdir.DirDelivery(result.path)
    try:
        filesdir.deliver(
            conn,
            delivery,
            plan.files,
            target.file_mode,
            post_command=target.post_command,
            post_command_timeout=settings.post_command_timeout,
            rollback_on_failure=settings.rollback_on_failure,
            lock_timeout=settings.lock_timeout,
            run=run,
            warn=warn,
        )
    finally:
        modes = None
        if delivery.before is not None:
            plan.read_back.values((n, f.content) for n, f in delivery.before.files.items())
            wrong = delivery.before.mode_drift(plan.files, target.file_mode)
            modes = (target.file_mode if wrong is None else wrong, target.file_mode)
        _copy_back(result, delivery, modes)


def _deliver(
    settings: Settings,
    plan: TargetPlan,
    conn: Connection,
    result: HostResult,
    run: RunInfo,
    warn: Callable[[str], None],
) -> None:
    """Lock, back up, write, post-command (and rollback), audit: `remote.transaction`."""
    from sops_deploy.remote import transaction

    target = plan.target
    policy = transaction.Policy(
        file_mode=target.file_mode,
        keep_backups=target.backup,
        post_command=target.post_command,
        post_command_timeout=settings.post_command_timeout,
        rollback_on_failure=settings.rollback_on_failure,
        lock_timeout=settings.lock_timeout,
        follow_symlinks=settings.follow_symlinks,
        owner=target.owner,
        validate_command=target.validate_command,
    )
    delivery = transaction.Delivery(result.path)
    try:
        transaction.deliver(
            conn,
            delivery,
            plan.content,
            policy,
            run=run,
            changes=lambda old: diff(plan, old),
            warn=warn,
        )
    finally:
        result.path, result.backup, before = delivery.path, delivery.backup, delivery.before
        modes = (before.mode, target.file_mode) if before is not None else None
        _copy_back(result, delivery, modes)
        if delivery.status == "unchanged" and target.post_command:
            result.note = "unchanged: the post-command runs only when the file changes"
        was, now = delivery.before.owner if delivery.before else None, delivery.owner
        if delivery.status == "changed" and was and now and was != now and not result.reason:
            result.note = f"owner: {was[0]}:{was[1]} → {now[0]}:{now[1]}"


def _copy_back(
    result: HostResult, delivery: Delivery | DirDelivery, modes: tuple[int | None, int] | None
) -> None:
    """What a delivery did, into the host's result, also when it stopped part-way: its
    status, commands, rollback and error; the key changes once the old state was read, and
    `modes` (the mode found, the mode wanted) when known."""
    result.status = delivery.status
    if delivery.before is not None:
        _record(result, delivery.changes)
    if modes is not None:
        result.mode_before, result.mode_after = modes
    result.commands, result.rolled_back = delivery.commands, delivery.rolled_back
    result.error = delivery.error


def _record(result: HostResult, changes: Changes) -> None:
    result.added, result.removed = changes.added, changes.removed
    result.changed, result.unchanged = changes.changed, changes.unchanged


def diff(plan: TargetPlan, old: bytes | None) -> Changes:
    """Key names added / removed / changed in one file; linear in the file size."""
    from sops_deploy.remote.audit import Changes

    fmt = plan.target.format
    if fmt == "raw":
        new_values = envfile.read_values(plan.content, fmt) or {}
    else:
        # build_plan proved that the reader gets exactly these values back from content.
        new_values = dict(plan.values())
    if old == plan.content:
        return Changes(unchanged=len(new_values))
    plan.read_back.file(old, fmt)  # the server's values are secrets too, masked now
    parsed_old = envfile.read_values(old, fmt) if old is not None else {}
    if parsed_old is None and fmt != "raw":
        # A hand-edited file that no longer parses: its keys cannot be compared one by one.
        return Changes(changed=[UNPARSEABLE])
    old_values = parsed_old or {}
    added = [k for k in new_values if k not in old_values]
    removed = [k for k in old_values if k not in new_values]
    changed = [k for k in new_values if k in old_values and old_values[k] != new_values[k]]
    if fmt == "raw" and not (added or removed or changed):
        changed = ["(file content)"]
    return Changes(added, removed, changed, len(new_values) - len(added) - len(changed))
