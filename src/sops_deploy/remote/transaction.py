"""One replacement of one file on one server, start to end, under the lock:
preflight (no link where the lock and audit go; commands can run if a post-command or a
validate-command is asked for; --owner's names looked up) → lock → read the current file →
clean debris → choose the owner (`owner`) → temp file → validate-command → back up → swap →
post-command (→ on failure restore and run it again) → audit line → unlock.

It is given the bytes to write; it does not decide them. `changes` turns the file read
under the lock into the key names that the audit line records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from sops_deploy.defaults import BACKUPS, FILE_MODE, LOCK_TIMEOUT, POST_COMMAND_TIMEOUT
from sops_deploy.errors import RemoteError, SopsDeployError
from sops_deploy.inputs.runinfo import RunInfo
from sops_deploy.interrupt import Interrupted
from sops_deploy.remote import atomic, audit, backup, lock, owner, safefile, validatecmd
from sops_deploy.remote.atomic import FileState
from sops_deploy.remote.audit import Changes
from sops_deploy.remote.connection import Connection
from sops_deploy.remote.failures import IO_ERRORS
from sops_deploy.remote.postcommand import CommandRun, run_command


@dataclass(frozen=True)
class Policy:
    """How a file is replaced (the deploy's safety settings)."""

    file_mode: int = FILE_MODE
    keep_backups: int = BACKUPS
    post_command: str | None = None
    post_command_timeout: float = POST_COMMAND_TIMEOUT
    rollback_on_failure: bool = True
    lock_timeout: float = LOCK_TIMEOUT
    follow_symlinks: bool = False
    owner: str | None = None  # --owner USER:GROUP
    validate_command: str | None = None


@dataclass
class Delivery:
    """What happened on the server; filled in as the steps run (also when one fails)."""

    path: str
    status: str = "failed"  # changed | unchanged | failed
    before: FileState | None = None
    changes: Changes = field(default_factory=Changes)
    backup: str | None = None
    commands: list[CommandRun] = field(default_factory=list)
    rolled_back: bool = False
    error: SopsDeployError | None = None
    owner: owner.Owner | None = None  # what the file was given (None: the login user's)


def deliver(
    conn: Connection,
    delivery: Delivery,
    content: bytes,
    policy: Policy,
    *,
    run: RunInfo,
    changes: Callable[[bytes | None], Changes],
    warn: Callable[[str], None],
) -> None:
    """Make `delivery.path` hold `content`; raises the first error after the audit line."""
    preflight(conn, delivery.path, policy.post_command or policy.validate_command)
    wanted = owner.resolve(conn, policy.owner, conn.timeout)
    with lock.remote_lock(conn, delivery.path, run, timeout=policy.lock_timeout, warn=warn):
        before = atomic.current(conn, delivery.path, follow_symlinks=policy.follow_symlinks)
        atomic.clean_debris(conn, delivery.path)
        lock_path, delivery.path, delivery.before = delivery.path, before.path, before
        delivery.changes = changes(before.content)
        try:
            owners = _owners(conn, lock_path, before, policy, wanted, warn)
            delivery.owner = owners[0] or owners[2]
            _replace(conn, delivery, before, content, policy, owners, warn)
        except BaseException as exc:
            delivery.status = "failed"
            if isinstance(exc, SopsDeployError):
                delivery.error = exc
            _audit(conn, lock_path, delivery, content, run)
            raise
        _audit(conn, lock_path, delivery, content, run)
    if delivery.error is not None:
        raise delivery.error


def preflight(conn: Connection, path: str, post_command: str | None) -> None:
    # `post_command`: any command the deploy will run there (post- or validate-command)
    """Before anything is created: no link or odd file where the lock and the audit line
    go, and a post-command only where commands can run (not on an SFTP-only account)."""
    safefile.checked_names(
        conn, (path + lock.LOCK_SUFFIX, "lock file"), (path + audit.AUDIT_SUFFIX, "audit log")
    )
    if post_command and not conn.can_run_commands():
        raise RemoteError(
            f"{conn.spec}: {conn.user} cannot run commands on this server (an SFTP-only "
            "account: ForceCommand internal-sftp, a nologin shell, or exec refused), so the "
            "post-command cannot run; nothing was written",
            "drop --post-command for this host, or deploy with an account that may run commands",
        )


def _owners(
    conn: Connection,
    lock_path: str,
    before: FileState,
    policy: Policy,
    wanted: tuple[int | None, int | None],
    warn: Callable[[str], None],
) -> tuple[owner.Owner | None, bool, owner.Owner | None]:
    """(the owner the new file gets — None: the login user's —, asked with --owner, the
    login user's ids): `owner`'s rules."""
    directory = before.path.rsplit("/", 1)[0] or "/"
    # The lock's lstat and the directory's stat asked together: one round trip.
    lock_attr, dir_attr = conn.attributes(
        ("lstat", lock_path + lock.LOCK_SUFFIX), ("stat", directory)
    )
    mine = owner.me(conn, lock_path + lock.LOCK_SUFFIX, lock_attr)
    if policy.owner is None:
        owner.warn_if_shared(conn, directory, mine, warn, dir_attr)

    def trusted() -> owner.Owner | None:
        return None if mine is None else owner.recorded(conn, lock_path + audit.AUDIT_SUFFIX, mine)

    chosen, asked = owner.choose(conn, before.path, before.owner, wanted, mine, trusted, warn)
    return chosen, asked, mine


def _replace(
    conn: Connection,
    delivery: Delivery,
    before: FileState,
    content: bytes,
    policy: Policy,
    owners: tuple[owner.Owner | None, bool, owner.Owner | None],
    warn: Callable[[str], None],
) -> None:
    path = before.path
    chosen, asked, mine = owners
    want = chosen or mine
    if before.content == content and (want is None or before.owner == want):
        if before.mode != policy.file_mode:
            safefile.chmod_regular(conn, path, policy.file_mode, "target file")
        delivery.status = "changed" if before.mode != policy.file_mode else "unchanged"
        return
    conn.cancel.check(f"replacing {path}")

    def denied(attr: object) -> None:
        assert chosen is not None
        if asked:
            raise owner.denied(conn, path, chosen)
        warn(
            f"{conn.spec}: {path} was given {owner.text(chosen)} by an earlier deploy; "
            f"{conn.user} may not give the new file that owner (pass --become, or --owner)"
        )
        delivery.owner = mine

    temp = atomic.write_temp(conn, path, content, policy.file_mode, chosen, denied)
    try:
        if policy.validate_command:
            run = validatecmd.validate(
                conn, temp, policy.validate_command, policy.post_command_timeout
            )
            delivery.commands.append(run)
            if not run.ok:
                raise validatecmd.failed(conn, path, run)
        if before.content is not None and policy.keep_backups > 0:
            keep = before.owner in (mine, chosen)
            delivery.backup = backup.backup(conn, before, policy.keep_backups, link=keep)
    except BaseException as exc:
        atomic.remove_quietly(conn, temp)
        raise atomic.write_error(conn, path, len(content), exc) from None
    atomic.swap(conn, temp, path, len(content))
    delivery.status = "changed"
    if policy.post_command:
        _post_command(conn, delivery, before, policy, policy.post_command)


def _post_command(
    conn: Connection, delivery: Delivery, before: FileState, policy: Policy, command: str
) -> None:
    path = before.path
    directory = path.rsplit("/", 1)[0] or "/"
    timeout = policy.post_command_timeout
    first = run_command(conn, directory, command, timeout, "post-command")
    delivery.commands.append(first)
    if first.ok:
        return
    delivery.status = "failed"
    if not policy.rollback_on_failure:
        delivery.error = RemoteError(
            f"{conn.spec}: {first.describe()}; the new {path} stays in place "
            "(--no-rollback-on-failure)",
            "read the command's output above, fix the cause, and deploy again",
        )
        return
    restored = backup.restore(conn, before, policy.file_mode, delivery.owner)
    delivery.rolled_back = True
    again = run_command(conn, directory, command, timeout, "post-command after rollback")
    delivery.commands.append(again)
    delivery.error = RemoteError(
        f"{conn.spec}: {first.describe()}; {restored} {path}; {again.describe()}",
        "read the command's output above: the new secrets made it fail; fix them (or the "
        "service) and deploy again",
    )


def _audit(
    conn: Connection, lock_path: str, delivery: Delivery, content: bytes, run: RunInfo
) -> None:
    changes = delivery.changes
    record = audit.audit_record(
        run,
        host=str(conn.spec),
        path=delivery.path,
        sha256=hashlib.sha256(content).hexdigest(),
        added=changes.added,
        removed=changes.removed,
        changed=changes.changed,
        result="interrupted"
        if isinstance(delivery.error, Interrupted)
        else "rolled-back"
        if delivery.rolled_back
        else delivery.status,
        backup=delivery.backup,
        owner=owner.text(delivery.owner) if delivery.owner else None,
        post_command=[
            {"exit": r.exit_status, "timed_out": r.timed_out}
            for r in delivery.commands
            if r.label != validatecmd.LABEL
        ],
        validate_command=[
            {"exit": r.exit_status, "timed_out": r.timed_out}
            for r in delivery.commands
            if r.label == validatecmd.LABEL
        ]
        or None,
    )
    try:
        audit.rotate_if_full(conn, lock_path)
        audit.append_audit(conn, lock_path, record)
    except IO_ERRORS:
        if delivery.status != "failed":
            raise
