"""Orchestration: build the plan once (decrypt → parse → lint → schema → render), then
apply it to each host in parallel and collect one result per host.

Nothing here parses flags or prints; `cli.py` and `report.py` do.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sops_deploy import envfile, schema, sops
from sops_deploy.config import HostSpec, Settings
from sops_deploy.envfile import Entry, Secrets
from sops_deploy.errors import (
    Problem,
    RemoteError,
    SopsDeployError,
    UsageError,
    ValidationError,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sops_deploy.postdeploy import CommandRun
    from sops_deploy.remote import Connection, FileState


@dataclass(frozen=True)
class Plan:
    """What every host should hold: the rendered bytes and the secrets they came from."""

    secrets: Secrets
    content: bytes
    format: str
    warnings: tuple[Problem, ...] = ()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def values(self) -> list[str]:
        return [e.value for e in self.secrets.values()]


@dataclass
class HostResult:
    """The outcome for one host. Key names only; never a value."""

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


def decrypt_all(settings: Settings, sops_bin: str) -> list[tuple[sops.EncryptedFile, bytes]]:
    """Decrypt every source file (in memory), in order."""
    if not settings.files:
        raise UsageError("no encrypted file given", "pass --file secrets/.env.encrypted")
    return [
        (enc, sops.decrypt(sops_bin, enc, settings.age))
        for enc in (sops.inspect(path) for path in settings.files)
    ]


def build_plan(
    settings: Settings,
    decrypted: list[tuple[sops.EncryptedFile, bytes]],
    mask: Callable[[list[str]], None],
) -> Plan:
    """Parse, lint, check and render the decrypted files; all problems raised together.

    `mask` receives every value as soon as it is parsed, before any problem is reported.
    """
    if settings.format == "raw":
        mask(
            [
                line
                for _, plaintext in decrypted
                for line in plaintext.decode("utf-8", "replace").splitlines()
            ]
        )
        return _raw_plan(settings, decrypted)
    problems: list[Problem] = []
    layers: list[list[Entry]] = []
    for enc, plaintext in decrypted:
        entries, found = parse_plaintext(enc, plaintext)
        mask([e.value for e in entries])
        problems += found + envfile.lint(entries)
        layers.append(entries)
    merged = envfile.merge(layers)
    problems += schema.check(merged, settings)
    content, unrepresentable = envfile.render_checked(merged, settings.format)
    problems = schema.drop_covered_warnings(problems + unrepresentable)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ValidationError(problems)
    return Plan(merged, content, settings.format, tuple(problems))


def parse_plaintext(enc: sops.EncryptedFile, plaintext: bytes) -> tuple[list[Entry], list[Problem]]:
    """One decrypted file as entries: dotenv text (dotenv or binary store) or a flat map."""
    text, problems = envfile.decode(plaintext, enc.path)
    if enc.stored_format in ("yaml", "json"):
        entries, found = envfile.parse_json_map(text, enc.path, envfile.key_lines(enc.path))
    else:
        entries, found = envfile.parse_dotenv(text, enc.path)
    return entries, problems + found


def _raw_plan(settings: Settings, decrypted: list[tuple[sops.EncryptedFile, bytes]]) -> Plan:
    if len(decrypted) != 1:
        raise UsageError("--format raw deploys exactly one file", "pass a single --file")
    if settings.required or settings.schema:
        raise UsageError(
            "--format raw cannot check required keys or a schema",
            "drop --required/--schema, or use a dotenv format",
        )
    return Plan({}, decrypted[0][1], "raw")


# --- applying the plan ---------------------------------------------------------------------


class PlanAbandoned(Exception):
    """The plan failed while this host was being connected: nothing is done on it."""


def _plan_of(plan: Plan | Future[Plan]) -> Plan:
    """The plan, waiting for it when it is still being built (decrypt, validate)."""
    if isinstance(plan, Plan):
        return plan
    try:
        return plan.result()
    except BaseException:
        raise PlanAbandoned from None


def _backoff(plan: Plan | Future[Plan]) -> Callable[[float], None]:
    """time.sleep for connection retries, cut short when the plan has failed meanwhile."""

    def sleep(seconds: float) -> None:
        if isinstance(plan, Plan):
            time.sleep(seconds)
            return
        wait([plan], timeout=seconds)
        if plan.done() and plan.exception() is not None:
            raise PlanAbandoned

    return sleep


def open_host(
    settings: Settings,
    spec: HostSpec,
    warn: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> AbstractContextManager[Connection]:
    """A connection to `spec` through the jump host if any, retried on connection errors."""
    from sops_deploy.remote import Credentials, Trust, local_user
    from sops_deploy.remote_ops import connected

    return connected(
        spec,
        Credentials(settings.ssh_key, settings.ssh_key_file, settings.ssh_passphrase),
        Trust(settings.known_hosts, settings.fingerprints, settings.insecure_any_host_key),
        default_user=settings.user or local_user(),
        timeout=settings.timeout,
        retries=settings.retries,
        jump=settings.jump_host,
        warn=warn,
        sleep=sleep,
    )


def apply_host(
    settings: Settings,
    planned: Plan | Future[Plan],
    spec: HostSpec,
    mode: str,
    warn: Callable[[str], None],
) -> HostResult:
    """Deploy to (mode="deploy") or compare with (mode="check"/"diff") one host.

    `planned` may still be in the making: the host is connected meanwhile (as the shell
    pipeline's ssh connects while sops decrypts), and PlanAbandoned is raised if it fails.
    """
    from sops_deploy.remote_ops import IO_ERRORS, lost, remote_lock

    started = time.monotonic()
    result = HostResult(str(spec), "failed")
    try:
        with open_host(settings, spec, warn, _backoff(planned)) as conn:
            try:
                path = conn.resolve(settings.remote_path)
                result.path = path
                if mode == "deploy" and not settings.dry_run:
                    # directory, symlink: fail early (the content is read under the lock)
                    _current(settings, conn, path, result, read=False)
                    with remote_lock(conn, path, timeout=settings.lock_timeout, warn=warn):
                        _deploy_locked(settings, planned, conn, path, result, warn)
                else:
                    _compare(settings, planned, conn, path, mode, result)
            except IO_ERRORS as exc:
                raise lost(spec, f"working on {result.path or settings.remote_path}", exc) from None
    except SopsDeployError as exc:
        result.status = "failed"
        result.error = exc
    result.seconds = time.monotonic() - started
    return result


def _current(
    settings: Settings, conn: Connection, path: str, result: HostResult, *, read: bool = True
) -> FileState:
    """What is at `path` now, following a symlink only with --follow-symlinks."""
    current = conn.state(path, read=read)
    if current.is_symlink:
        if not settings.follow_symlinks:
            raise UsageError(
                f"{conn.spec}: {path} is a symlink; refusing to replace it",
                "point --remote-path at the real file, or pass "
                "--follow-symlinks to write through the link",
            )
        result.path = conn.sftp.normalize(path)
        current = conn.state(result.path, read=read)
    return current


def _compare(
    settings: Settings,
    planned: Plan | Future[Plan],
    conn: Connection,
    path: str,
    mode: str,
    result: HostResult,
) -> None:
    current = _current(settings, conn, path, result)
    plan = _plan_of(planned)  # the server's file was read while the plan was being built
    _diff_into(result, plan, current.content)
    result.mode_before = current.mode
    result.mode_after = settings.file_mode
    same_mode = current.mode == settings.file_mode
    same = current.content == plan.content and same_mode
    if mode in ("check", "diff"):
        drift = bool(result.added or result.removed or result.changed) or not same_mode
        result.status = "drift" if drift else "in-sync"
    else:
        result.status = "unchanged" if same else "would-change"


def _deploy_locked(
    settings: Settings,
    planned: Plan | Future[Plan],
    conn: Connection,
    lock_path: str,
    result: HostResult,
    warn: Callable[[str], None],
) -> None:
    """Under the lock: clean debris, back up, write, post-command (and rollback), audit."""
    from sops_deploy import remote_ops

    current = _current(settings, conn, lock_path, result)
    # Locked and read while the plan was being built; bad secrets leave the server as it was
    # (but for the lock file, created and removed).
    plan = _plan_of(planned)
    remote_ops.clean_debris(conn, lock_path)
    path = result.path
    _diff_into(result, plan, current.content)
    result.mode_before = current.mode
    result.mode_after = settings.file_mode
    owner = None if current.uid is None or current.gid is None else (current.uid, current.gid)
    try:
        if current.content == plan.content:
            if current.mode != settings.file_mode:
                conn.chmod(path, settings.file_mode)
            result.status = "changed" if current.mode != settings.file_mode else "unchanged"
        else:
            if current.content is not None and settings.backup > 0:
                result.backup = remote_ops.backup(
                    conn, path, current.content, settings.backup, current.mode
                )
            conn.write_atomic(path, plan.content, settings.file_mode, owner)
            result.status = "changed"
            if settings.post_command:
                _post_command(settings, conn, path, current, owner, result)
    except BaseException as exc:
        result.status = "failed"
        if isinstance(exc, SopsDeployError):
            result.error = exc
        _audit(conn, lock_path, plan, result)
        raise
    _audit(conn, lock_path, plan, result)
    if result.error is not None:
        raise result.error


def _post_command(
    settings: Settings,
    conn: Connection,
    path: str,
    old: FileState,
    owner: tuple[int, int] | None,
    result: HostResult,
) -> None:
    from sops_deploy.postdeploy import run_command

    assert settings.post_command is not None
    directory = path.rsplit("/", 1)[0] or "/"
    timeout = settings.post_command_timeout
    run = run_command(conn, directory, settings.post_command, timeout, "post-command")
    result.commands.append(run)
    if run.ok:
        return
    result.status = "failed"
    if not settings.rollback_on_failure:
        result.error = RemoteError(
            f"{conn.spec}: {run.describe()}; the new {path} stays in place "
            "(--no-rollback-on-failure)",
            "read the command's output above, fix the cause, and deploy again",
        )
        return
    if old.content is None:
        conn.sftp.remove(path)
    else:
        conn.write_atomic(path, old.content, old.mode or settings.file_mode, owner)
    result.rolled_back = True
    again = run_command(
        conn, directory, settings.post_command, timeout, "post-command after rollback"
    )
    result.commands.append(again)
    restored = "removed the new file" if old.content is None else "restored the previous file"
    result.error = RemoteError(
        f"{conn.spec}: {run.describe()}; {restored} {path}; {again.describe()}",
        "read the command's output above: the new secrets made it fail; fix them (or the "
        "service) and deploy again",
    )


def _audit(conn: Connection, path: str, plan: Plan, result: HostResult) -> None:
    from sops_deploy import postdeploy
    from sops_deploy.remote_ops import IO_ERRORS

    outcome = "rolled-back" if result.rolled_back else result.status
    record = postdeploy.audit_record(
        host=result.host,
        path=result.path,
        sha256=plan.sha256,
        added=result.added,
        removed=result.removed,
        changed=result.changed,
        result=outcome,
        backup=result.backup,
        post_command=[{"exit": r.exit_status, "timed_out": r.timed_out} for r in result.commands],
    )
    try:
        postdeploy.append_audit(conn, path, record)
    except IO_ERRORS:
        if result.status != "failed":
            raise


def _diff_into(result: HostResult, plan: Plan, old: bytes | None) -> None:
    """Key names added / removed / changed on the host; linear in the file size."""
    if plan.format == "raw":
        new_values = envfile.read_values(plan.content, plan.format) or {}
    else:
        # build_plan proved that the reader gets exactly these values back from content.
        new_values = {key: entry.value for key, entry in plan.secrets.items()}
    if old == plan.content:
        result.unchanged = len(new_values)
        return
    parsed_old = envfile.read_values(old, plan.format) if old is not None else {}
    if parsed_old is None and plan.format != "raw":
        # A hand-edited file that no longer parses: its keys cannot be compared one by one.
        result.changed = [UNPARSEABLE]
        return
    old_values = parsed_old or {}
    result.added = [k for k in new_values if k not in old_values]
    result.removed = [k for k in old_values if k not in new_values]
    result.changed = [k for k in new_values if k in old_values and old_values[k] != new_values[k]]
    result.unchanged = len(new_values) - len(result.added) - len(result.changed)
    if (
        plan.format == "raw"
        and old != plan.content
        and not (result.added or result.removed or result.changed)
    ):
        result.changed = ["(file content)"]


def apply_all(
    settings: Settings,
    plan: Plan | Future[Plan],
    mode: str,
    warn: Callable[[str], None],
    on_done: Callable[[HostResult], None] = lambda _r: None,
) -> list[HostResult]:
    """Apply to every host, `settings.parallel` at a time; results in host order.

    `on_done` sees each result as it completes. Every host is tried even when some fail;
    with `settings.fail_fast`, hosts not yet started when a host fails are not started
    and come back as "skipped". An unexpected exception in one host's thread fails that
    host only.
    """
    if not settings.hosts:
        raise UsageError("no host given", "pass --host user@server (repeatable)")
    workers = max(1, min(settings.parallel, len(settings.hosts)))
    stop = threading.Event()

    def one(spec: HostSpec) -> HostResult:
        if stop.is_set():
            return HostResult(str(spec), "skipped", note=SKIPPED_NOTE)
        try:
            result = apply_host(settings, plan, spec, mode, warn)
        except PlanAbandoned:
            return HostResult(str(spec), "skipped", note="the secrets did not validate")
        except Exception as exc:  # one host's bug must not abandon the other hosts
            result = HostResult(str(spec), "failed")
            result.error = RemoteError(
                f"{spec}: unexpected {type(exc).__name__}: {exc}",
                "this is a bug in sops-deploy; please report it with the log above",
            )
        if result.failed and settings.fail_fast:
            stop.set()
        return result

    results: dict[int, HostResult] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="host") as pool:
        futures = {pool.submit(one, spec): i for i, spec in enumerate(settings.hosts)}
        for future in as_completed(futures):
            result = future.result()
            results[futures[future]] = result
            on_done(result)
    return [results[i] for i in sorted(results)]


UNPARSEABLE = "(server file does not parse as dotenv)"
SKIPPED_NOTE = "not started: another host failed and --fail-fast is set"
