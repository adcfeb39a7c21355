"""A `files` target on a server: a directory holding one file per key, each replaced by
the atomic protocol of `atomic` (temp 0600 → mode → posix-rename), under one lock for
the directory, with the audit line and the post-command of a single file.

The directory's manifest `.sops-deploy-manifest` (0600, JSON) lists the names this tool
wrote; a name that leaves the plan is removed only if the manifest lists it, so files
that others put in the directory are never touched. Comparison is per file, by name:
what is added, removed, changed (content or mode) — never a value. Neither the manifest
nor the lock and audit files (`.sops-deploy-manifest.sops-deploy.lock`, `….deploy.log`)
can clash with a key: a key's file name never starts with a dot.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sops_deploy.errors import RemoteError, SopsDeployError, UsageError
from sops_deploy.inputs.runinfo import RunInfo
from sops_deploy.remote import atomic, audit, lock, safefile, transaction
from sops_deploy.remote.atomic import TEMP_MARKER, FileState
from sops_deploy.remote.audit import Changes
from sops_deploy.remote.connection import Connection
from sops_deploy.remote.failures import IO_ERRORS
from sops_deploy.remote.postcommand import CommandRun, run_command

MANIFEST = ".sops-deploy-manifest"


@dataclass(frozen=True)
class DirState:
    """What the directory holds now: the files of the names asked about, and the manifest."""

    directory: str
    files: dict[str, FileState]  # name → state (content None: absent)
    manifest: tuple[str, ...]  # names this tool wrote before

    def changes(self, want: Mapping[str, bytes], mode: int) -> Changes:
        """Names added, removed (ours, no longer wanted), changed in content or mode."""
        added = [n for n in want if self.files[n].content is None]
        changed = [
            n
            for n in want
            if self.files[n].content is not None
            and (self.files[n].content != want[n] or self.files[n].mode != mode)
        ]
        removed = [n for n in self.manifest if n not in want and self.files[n].content is not None]
        return Changes(added, removed, changed, len(want) - len(added) - len(changed))

    def mode_drift(self, want: Mapping[str, bytes], mode: int) -> int | None:
        """The first wrong mode among the wanted files that exist, else None."""
        for name in want:
            state = self.files[name]
            if state.content is not None and state.mode != mode:
                return state.mode
        return None


def check_directory(conn: Connection, directory: str) -> None:
    """The directory exists and is a real directory (not a symlink), or a clear error."""
    try:
        attr = conn.lstat(directory)
    except FileNotFoundError:
        raise RemoteError(
            f"{conn.spec}: directory {directory} does not exist",
            f"create it on the server (`mkdir -p {directory}`, owned by {conn.user}) or fix "
            "the target's remote-path",
        ) from None
    mode = attr.st_mode or 0
    if stat.S_ISLNK(mode):
        raise UsageError(
            f"{conn.spec}: {directory} is a symlink; refusing to write secrets through it",
            "point the files target's remote-path at the real directory",
        )
    if not stat.S_ISDIR(mode):
        raise RemoteError(
            f"{conn.spec}: {directory} is not a directory (format files writes one file per "
            "key into a directory)",
            "point remote-path at a directory, or give the target a dotenv format",
        )


def read_state(conn: Connection, directory: str, names: list[str]) -> DirState:
    """The manifest and the files of `names` and of every name the manifest lists."""
    check_directory(conn, directory)
    manifest = _read_manifest(conn, directory)
    files: dict[str, FileState] = {}
    for name in dict.fromkeys([*names, *manifest]):
        path = posixpath.join(directory, name)
        state = atomic.current(conn, path, follow_symlinks=False)
        files[name] = state
    return DirState(directory, files, manifest)


def _read_manifest(conn: Connection, directory: str) -> tuple[str, ...]:
    path = posixpath.join(directory, MANIFEST)
    seen = safefile.checked_name(conn, path, "manifest")
    if seen is None:
        return ()
    raw = safefile.read_limited(conn, path, seen, "manifest", 1 << 20)
    try:
        names = json.loads(raw).get("files", [])
    except (ValueError, AttributeError):
        names = None
    if not isinstance(names, list) or not all(_own_name(n) for n in names):
        raise RemoteError(
            f"{conn.spec}: {posixpath.join(directory, MANIFEST)} is not a manifest this tool "
            "wrote (it lists the files it may remove)",
            "delete that file on the server (the next deploy writes it again; files it "
            "listed are then left in place)",
        )
    return tuple(names)


def _own_name(name: object) -> bool:
    return isinstance(name, str) and bool(name) and "/" not in name and name[0] != "."


@dataclass
class DirDelivery:
    """What happened in the directory; filled in as the steps run (also when one fails)."""

    directory: str
    status: str = "failed"  # changed | unchanged | failed
    before: DirState | None = None
    changes: Changes = field(default_factory=Changes)
    commands: list[CommandRun] = field(default_factory=list)
    rolled_back: bool = False
    error: SopsDeployError | None = None


def deliver(
    conn: Connection,
    delivery: DirDelivery,
    want: dict[str, bytes],
    mode: int,
    *,
    post_command: str | None,
    post_command_timeout: float,
    rollback_on_failure: bool,
    lock_timeout: float,
    run: RunInfo,
    warn: Callable[[str], None],
) -> None:
    """Make the directory hold `want` (name → bytes, each file `mode`); raises the first
    error after the audit line."""
    directory = delivery.directory
    anchor = posixpath.join(directory, MANIFEST)
    transaction.preflight(conn, anchor, post_command)
    with lock.remote_lock(conn, anchor, run, timeout=lock_timeout, warn=warn):
        before = read_state(conn, directory, list(want))
        delivery.before = before
        _clean_debris(conn, directory)
        delivery.changes = before.changes(want, mode)
        try:
            _replace(conn, before, want, mode, delivery, warn)
            if delivery.status == "changed" and post_command:
                first = run_command(
                    conn, directory, post_command, post_command_timeout, "post-command"
                )
                delivery.commands.append(first)
                if not first.ok:
                    _after_failed_command(
                        conn, before, want, mode, delivery, post_command, post_command_timeout,
                        rollback_on_failure, warn,
                    )  # fmt: skip
        except BaseException as exc:
            delivery.status = "failed"
            if isinstance(exc, SopsDeployError):
                delivery.error = exc
            _audit(conn, anchor, delivery, want, run)
            raise
        _audit(conn, anchor, delivery, want, run)
    if delivery.error is not None:
        raise delivery.error


def _replace(
    conn: Connection,
    before: DirState,
    want: dict[str, bytes],
    mode: int,
    delivery: DirDelivery,
    warn: Callable[[str], None],
) -> None:
    directory, changes = before.directory, delivery.changes
    for name in [*changes.added, *changes.changed]:
        old = before.files[name]
        path = posixpath.join(directory, name)
        if old.content == want[name]:
            safefile.chmod_regular(conn, path, mode, "key file")
        else:
            atomic.write_atomic(conn, path, want[name], mode, None, warn)  # the login user's
    for name in changes.removed:
        conn.remove(posixpath.join(directory, name))
    manifest = sorted(want)
    if manifest != sorted(before.manifest) or changes.removed:
        body = json.dumps({"written-by": "sops-deploy", "files": manifest}, indent=1) + "\n"
        atomic.write_atomic(conn, posixpath.join(directory, MANIFEST), body.encode(), 0o600)
    changed = bool(changes.added or changes.changed or changes.removed)
    delivery.status = "changed" if changed else "unchanged"


def _after_failed_command(
    conn: Connection,
    before: DirState,
    want: dict[str, bytes],
    mode: int,
    delivery: DirDelivery,
    command: str,
    timeout: float,
    rollback: bool,
    warn: Callable[[str], None],
) -> None:
    """The post-command failed: put every file back as it was (unless told not to), run
    the command again, and record the error."""
    directory = before.directory
    delivery.status = "failed"
    first = delivery.commands[-1]
    if not rollback:
        delivery.error = RemoteError(
            f"{conn.spec}: {first.describe()}; the new files in {directory} stay in place "
            "(--no-rollback-on-failure)",
            "read the command's output above, fix the cause, and deploy again",
        )
        return
    for name, old in before.files.items():
        path = posixpath.join(directory, name)
        if old.content is None:
            if name in want:
                atomic.remove_quietly(conn, path)
        elif name in want or name in delivery.changes.removed:
            atomic.write_atomic(conn, path, old.content, old.mode or mode, None, warn)
    manifest = json.dumps({"written-by": "sops-deploy", "files": sorted(before.manifest)})
    atomic.write_atomic(conn, posixpath.join(directory, MANIFEST), manifest.encode(), 0o600)
    delivery.rolled_back = True
    again = run_command(conn, directory, command, timeout, "post-command after rollback")
    delivery.commands.append(again)
    delivery.error = RemoteError(
        f"{conn.spec}: {first.describe()}; restored the previous files in {directory}; "
        f"{again.describe()}",
        "read the command's output above: the new secrets made it fail; fix them (or the "
        "service) and deploy again",
    )


def _clean_debris(conn: Connection, directory: str) -> None:
    """Remove temp files a deploy whose connection died left (we hold the lock)."""

    def ours(entry: str) -> bool:
        return entry.startswith(".") and TEMP_MARKER in entry and entry.endswith(".tmp")

    for entry in conn.listdir(directory, ours):
        if ours(entry):
            atomic.remove_quietly(conn, posixpath.join(directory, entry))


def _audit(
    conn: Connection, anchor: str, delivery: DirDelivery, want: dict[str, bytes], run: RunInfo
) -> None:
    digest = hashlib.sha256()
    for name in sorted(want):
        digest.update(f"{name}\0{hashlib.sha256(want[name]).hexdigest()}\n".encode())
    changes = delivery.changes
    record = audit.audit_record(
        run,
        host=str(conn.spec),
        path=delivery.directory,
        format="files",
        sha256=digest.hexdigest(),
        added=changes.added,
        removed=changes.removed,
        changed=changes.changed,
        result="rolled-back" if delivery.rolled_back else delivery.status,
        post_command=[{"exit": r.exit_status, "timed_out": r.timed_out} for r in delivery.commands],
    )
    try:
        audit.rotate_if_full(conn, anchor)
        audit.append_audit(conn, anchor, record)
    except IO_ERRORS:
        if delivery.status != "failed":
            raise
