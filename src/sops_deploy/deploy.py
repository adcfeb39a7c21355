"""Orchestration of server targets: the plan (built once by `plan.py`, re-exported here)
→ per host → results, hosts in parallel.

A `Rollout` connects every host while the plan is being built (as `sops -d | ssh` does)
and reads what compare modes need; nothing is locked or created on a server until the
plan is valid, and a plan that fails leaves every server untouched. Per host, the work on
the server is `remote.transaction`'s; nothing here parses flags, prints or reads the
environment (`RunInfo` comes from the caller).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from sops_deploy import envfile, runinfo
from sops_deploy.config import HostSpec, Settings
from sops_deploy.errors import RemoteError, SopsDeployError, UsageError
from sops_deploy.plan import Plan, build_plan, decrypt_all, parse_plaintext
from sops_deploy.runinfo import RunInfo

if TYPE_CHECKING:
    from sops_deploy.remote.atomic import FileState
    from sops_deploy.remote.audit import Changes
    from sops_deploy.remote.connection import Connection
    from sops_deploy.remote.postcommand import CommandRun


__all__ = [
    "HostResult",
    "Plan",
    "PlanAbandoned",
    "Rollout",
    "apply_all",
    "apply_host",
    "build_plan",
    "decrypt_all",
    "open_host",
    "parse_plaintext",
]


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


# --- applying the plan ---------------------------------------------------------------------


class PlanAbandoned(Exception):
    """The plan failed while this host was being connected: nothing is done on it."""


class _Gate:
    """Hands the plan to the host threads once it is valid, or tells them it failed."""

    def __init__(self, plan: Plan | None = None) -> None:
        self.abandoned = threading.Event()  # also stops connection retries at once
        self._ready = threading.Event()
        self._plan = plan
        if plan is not None:
            self._ready.set()

    def open(self, plan: Plan) -> None:
        self._plan = plan
        self._ready.set()

    def abandon(self) -> None:
        self.abandoned.set()
        self._ready.set()

    def plan(self) -> Plan:
        self._ready.wait()
        if self._plan is None:
            raise PlanAbandoned
        return self._plan


def _run_of(settings: Settings) -> RunInfo:
    """Who runs this (the front door's `settings.run`; a bare one for in-process callers)."""
    return settings.run or runinfo.from_environ({}, {})


def open_host(
    settings: Settings,
    spec: HostSpec,
    warn: Callable[[str], None],
    run: RunInfo | None = None,
    cancel: threading.Event | None = None,
) -> Connection:
    """A connection to `spec` (through the jump host, if any), opened by `with`; connection
    errors are retried with backoff, which `cancel` cuts short. ~/.ssh/config applies as
    with `ssh` (`sshroute`): an alias's HostName, User, Port, IdentityFile, ProxyJump."""
    from sops_deploy.remote import Connection, Credentials, Options, Trust
    from sops_deploy.sshroute import for_settings

    route = for_settings(settings, spec)
    options = Options(
        Credentials(settings.ssh_key, settings.ssh_key_file, settings.ssh_passphrase),
        Trust(settings.known_hosts, settings.fingerprints, settings.insecure_any_host_key),
        default_user=settings.user or (run or _run_of(settings)).user,
        timeout=settings.timeout,
        retries=settings.retries,
        jump=route.jump if route else settings.jump_host,
        ssh=settings.ssh,
        resolved=route.resolved if route else None,
        jump_resolved=route.jump_resolved if route else None,
        ci=settings.ci,
    )
    return Connection(route.target if route else spec, options, warn=warn, cancel=cancel)


def apply_host(
    settings: Settings,
    plan: Plan,
    spec: HostSpec,
    mode: str,
    warn: Callable[[str], None],
    run: RunInfo | None = None,
) -> HostResult:
    """Deploy to (mode="deploy") or compare with (mode="check"/"diff") one host."""
    return _host(settings, spec, mode, warn, run or _run_of(settings), _Gate(plan))


def _host(
    settings: Settings,
    spec: HostSpec,
    mode: str,
    warn: Callable[[str], None],
    run: RunInfo,
    gate: _Gate,
) -> HostResult:
    """Connect and look (while the plan is built), then act once `gate` has the plan."""
    from sops_deploy.remote import atomic
    from sops_deploy.remote.failures import IO_ERRORS, Cancelled, lost

    started = time.monotonic()
    result = HostResult(str(spec), "failed")
    try:
        with open_host(settings, spec, warn, run, gate.abandoned) as conn:
            try:
                result.path = conn.resolve(settings.remote_path)
                if mode == "deploy" and not settings.dry_run:
                    # A directory or symlink fails now; the file is read under the lock.
                    atomic.current(
                        conn, result.path, follow_symlinks=settings.follow_symlinks, read=False
                    )
                    _deliver(settings, gate.plan(), conn, result, run, warn)
                else:
                    current = atomic.current(
                        conn, result.path, follow_symlinks=settings.follow_symlinks
                    )
                    result.path = current.path
                    _compare(settings, gate.plan(), current, mode, result)
            except IO_ERRORS as exc:
                raise lost(spec, f"working on {result.path or settings.remote_path}", exc) from None
    except Cancelled:
        raise PlanAbandoned from None
    except SopsDeployError as exc:
        result.status = "failed"
        result.error = exc
    result.seconds = time.monotonic() - started
    return result


def _compare(
    settings: Settings, plan: Plan, current: FileState, mode: str, result: HostResult
) -> None:
    _record(result, _diff(plan, current.content))
    result.mode_before = current.mode
    result.mode_after = settings.file_mode
    same_mode = current.mode == settings.file_mode
    same = current.content == plan.content and same_mode
    if mode in ("check", "diff"):
        drift = bool(result.added or result.removed or result.changed) or not same_mode
        result.status = "drift" if drift else "in-sync"
    else:
        result.status = "unchanged" if same else "would-change"


def _deliver(
    settings: Settings,
    plan: Plan,
    conn: Connection,
    result: HostResult,
    run: RunInfo,
    warn: Callable[[str], None],
) -> None:
    """Lock, back up, write, post-command (and rollback), audit: `remote.transaction`."""
    from sops_deploy.remote import transaction

    policy = transaction.Policy(
        file_mode=settings.file_mode,
        keep_backups=settings.backup,
        post_command=settings.post_command,
        post_command_timeout=settings.post_command_timeout,
        rollback_on_failure=settings.rollback_on_failure,
        lock_timeout=settings.lock_timeout,
        follow_symlinks=settings.follow_symlinks,
    )
    delivery = transaction.Delivery(result.path)
    try:
        transaction.deliver(
            conn,
            delivery,
            plan.content,
            policy,
            run=run,
            changes=lambda old: _diff(plan, old),
            warn=warn,
        )
    finally:
        result.path, result.status = delivery.path, delivery.status
        if delivery.before is not None:
            _record(result, delivery.changes)
            result.mode_before, result.mode_after = delivery.before.mode, settings.file_mode
        result.backup, result.commands = delivery.backup, delivery.commands
        result.rolled_back = delivery.rolled_back
        result.error = delivery.error


def _record(result: HostResult, changes: Changes) -> None:
    result.added, result.removed = changes.added, changes.removed
    result.changed, result.unchanged = changes.changed, changes.unchanged


def _diff(plan: Plan, old: bytes | None) -> Changes:
    """Key names added / removed / changed on the host; linear in the file size."""
    from sops_deploy.remote.audit import Changes

    if plan.format == "raw":
        new_values = envfile.read_values(plan.content, plan.format) or {}
    else:
        # build_plan proved that the reader gets exactly these values back from content.
        new_values = {key: entry.value for key, entry in plan.secrets.items()}
    if old == plan.content:
        return Changes(unchanged=len(new_values))
    parsed_old = envfile.read_values(old, plan.format) if old is not None else {}
    if parsed_old is None and plan.format != "raw":
        # A hand-edited file that no longer parses: its keys cannot be compared one by one.
        return Changes(changed=[UNPARSEABLE])
    old_values = parsed_old or {}
    added = [k for k in new_values if k not in old_values]
    removed = [k for k in old_values if k not in new_values]
    changed = [k for k in new_values if k in old_values and old_values[k] != new_values[k]]
    if plan.format == "raw" and not (added or removed or changed):
        changed = ["(file content)"]
    return Changes(added, removed, changed, len(new_values) - len(added) - len(changed))


class Rollout:
    """Every host of `settings`: connected as soon as the rollout is entered (while the
    caller builds the plan), then `apply(plan)` acts on each, `settings.parallel` at a
    time, and returns one result per host in host order.

    Leaving without `apply` (the plan failed) abandons every host untouched: nothing was
    locked or created, retries stop at once, connections close. `on_done` sees each
    result as it completes. Every host is tried even when some fail; with
    `settings.fail_fast`, hosts not yet started when one fails come back "skipped". An
    unexpected exception in one host's thread fails that host only.
    """

    def __init__(
        self,
        settings: Settings,
        mode: str,
        warn: Callable[[str], None],
        on_done: Callable[[HostResult], None] = lambda _r: None,
        run: RunInfo | None = None,
    ) -> None:
        if not settings.hosts:
            raise UsageError("no host given", "pass --host user@server (repeatable)")
        self._settings, self._mode, self._warn, self._on_done = settings, mode, warn, on_done
        self._run = run or _run_of(settings)
        self._gate = _Gate()
        self._stop = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[Future[HostResult], int] = {}

    def __enter__(self) -> Rollout:
        hosts = self._settings.hosts
        workers = max(1, min(self._settings.parallel, len(hosts)))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="host")
        self._futures = {self._pool.submit(self._one, spec): i for i, spec in enumerate(hosts)}
        return self

    def apply(self, plan: Plan) -> list[HostResult]:
        self._gate.open(plan)
        results: dict[int, HostResult] = {}
        for future in as_completed(self._futures):
            result = future.result()
            results[self._futures[future]] = result
            self._on_done(result)
        return [results[i] for i in sorted(results)]

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._gate.abandon()  # hosts that already have the plan finish their work
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _one(self, spec: HostSpec) -> HostResult:
        if self._stop.is_set():
            return HostResult(str(spec), "skipped", note=SKIPPED_NOTE)
        try:
            result = _host(self._settings, spec, self._mode, self._warn, self._run, self._gate)
        except PlanAbandoned:
            return HostResult(str(spec), "skipped", note="the secrets did not validate")
        except Exception as exc:  # one host's bug must not abandon the other hosts
            result = HostResult(str(spec), "failed")
            result.error = RemoteError(
                f"{spec}: unexpected {type(exc).__name__}: {exc}",
                "this is a bug in sops-deploy; please report it with the log above",
            )
        if result.failed and self._settings.fail_fast:
            self._stop.set()
        return result


def apply_all(
    settings: Settings,
    plan: Plan,
    mode: str,
    warn: Callable[[str], None],
    on_done: Callable[[HostResult], None] = lambda _r: None,
    run: RunInfo | None = None,
) -> list[HostResult]:
    """Apply a ready plan to every host (see `Rollout`); results in host order."""
    with Rollout(settings, mode, warn, on_done, run) as rollout:
        return rollout.apply(plan)


UNPARSEABLE = "(server file does not parse as dotenv)"
SKIPPED_NOTE = "not started: another host failed and --fail-fast is set"
