"""Orchestration of server targets: the plan (built once by `plan/build.py`) → per host →
per target → results, hosts in parallel.

A `Rollout` connects every host while the plan is being built (as `sops -d | ssh` does)
and reads what compare modes need; nothing is locked or created on a server until the
plan is valid, and a plan that fails leaves every server untouched. Each host gets one
connection for all its targets; the work on one target is `delivery`'s; nothing here
parses flags, prints or reads the environment (`RunInfo` comes from the caller).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from types import TracebackType
from typing import TYPE_CHECKING

from sops_deploy.deploy import delivery
from sops_deploy.deploy.delivery import HostResult
from sops_deploy.errors import RemoteError, SopsDeployError, UsageError
from sops_deploy.inputs import runinfo
from sops_deploy.inputs.runinfo import RunInfo
from sops_deploy.inputs.settings import HostSpec, Settings
from sops_deploy.plan.build import Plan

if TYPE_CHECKING:
    from sops_deploy.interrupt import Cancel
    from sops_deploy.remote.connection import Connection


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
    abandon: threading.Event | None = None,
    cancel: Cancel | None = None,
) -> Connection:
    """A connection to `spec` (through the jump host, if any), opened by `with`; connection
    errors are retried with backoff, which `abandon` cuts short; `cancel` (the run's token)
    travels with it to the remote layers. ~/.ssh/config applies as with `ssh`
    (`sshroute`): an alias's HostName, User, Port, IdentityFile, ProxyJump."""
    from sops_deploy.remote import Connection, Credentials, Options, Trust
    from sops_deploy.ssh.route import for_settings

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
        become=settings.become,
        become_sftp_server=settings.become_sftp_server,
    )
    target = route.target if route else spec
    return Connection(target, options, warn=warn, abandon=abandon, cancel=cancel)


def _host(
    settings: Settings,
    spec: HostSpec,
    warn: Callable[[str], None],
    run: RunInfo,
    gate: _Gate,
    cancel: Cancel | None,
) -> list[HostResult]:
    """One connection to `spec`: look at every target (while the plan is built), then act
    on each once `gate` has the plan. One result per target; a target that fails leaves
    the others to be tried."""
    from sops_deploy.remote.failures import IO_ERRORS, Cancelled, lost

    targets = settings.outputs()
    listed = bool(settings.targets)
    results = [
        HostResult(str(spec), "failed", target=t.label if listed else "", format=t.format)
        for t in targets
    ]
    started = time.monotonic()
    try:
        with open_host(settings, spec, warn, run, gate.abandoned, cancel) as conn:
            seen = []
            for target, result in zip(targets, results, strict=True):
                try:
                    seen.append(delivery.look(conn, settings, target, result))
                except IO_ERRORS as exc:
                    where = result.path or target.remote_path
                    raise lost(spec, f"working on {where}", exc) from None
            plans = gate.plan().for_targets(targets)
            for plan, current, result in zip(plans, seen, results, strict=True):
                try:
                    delivery.act(conn, settings, plan, current, result, run, warn)
                except IO_ERRORS as exc:
                    where = result.path or plan.target.remote_path
                    result.status, result.error = "failed", lost(spec, f"working on {where}", exc)
                except SopsDeployError as exc:
                    result.status, result.error = "failed", exc
    except Cancelled:
        raise PlanAbandoned from None
    except SopsDeployError as exc:
        for result in results:
            if result.error is None and result.status == "failed":
                result.error = exc
    seconds = time.monotonic() - started
    for result in results:
        result.seconds = seconds
    return results


class Rollout:
    """Every host of `settings`: connected as soon as the rollout is entered (while the
    caller builds the plan), then `apply(plan)` acts on each, `settings.parallel` at a
    time, and returns one result per host in host order.

    Leaving without `apply` (the plan failed) abandons every host untouched: nothing was
    locked or created, retries stop at once, connections close. `on_done` sees each
    result as it completes. Every host is tried even when some fail; with
    `settings.fail_fast`, hosts not yet started when one fails come back "skipped". With
    `settings.canary` N (deploy only), the first N hosts are connected and deployed first;
    the rest only when every one of them succeeded (post-command included), else they come
    back "skipped", not attempted, never connected to. An unexpected exception in one
    host's thread fails that host only.
    """

    def __init__(
        self,
        settings: Settings,
        warn: Callable[[str], None],
        on_done: Callable[[HostResult], None] = lambda _r: None,
        run: RunInfo | None = None,
        cancel: Cancel | None = None,
    ) -> None:
        if not settings.hosts:
            raise UsageError("no host given", "pass --host user@server (repeatable)")
        self._settings, self._warn, self._on_done = settings, warn, on_done
        self._run = run or _run_of(settings)
        self._cancel = cancel  # the run's token: each host's connection carries it
        self._gate = _Gate()
        self._stop = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[Future[list[HostResult]], int] = {}
        self._later: list[tuple[int, HostSpec]] = []

    def __enter__(self) -> Rollout:
        settings = self._settings
        hosts = settings.hosts
        workers = max(1, min(settings.parallel, len(hosts)))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="host")
        # --canary N: only the first N hosts are connected now; the rest once they succeed.
        first = len(hosts) if settings.command != "deploy" else settings.canary or len(hosts)
        self._later = list(enumerate(hosts))[first:]
        self._futures = {
            self._pool.submit(self._one, spec): i for i, spec in enumerate(hosts[:first])
        }
        return self

    def apply(self, plan: Plan) -> list[HostResult]:
        """One result per target of each host, in host order, then target order."""
        self._gate.open(plan)
        results: dict[int, list[HostResult]] = {}
        self._collect(results)
        if self._later:
            if any(r.failed for found in results.values() for r in found):
                for i, spec in self._later:
                    results[i] = [HostResult(str(spec), "skipped", note=NOT_ATTEMPTED_NOTE)]
                    self._on_done(results[i][0])
            else:
                assert self._pool is not None
                self._futures = {self._pool.submit(self._one, s): i for i, s in self._later}
                self._collect(results)
        return [r for i in sorted(results) for r in results[i]]

    def _collect(self, results: dict[int, list[HostResult]]) -> None:
        for future in as_completed(self._futures):
            found = future.result()
            results[self._futures[future]] = found
            for result in found:
                self._on_done(result)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._gate.abandon()  # hosts that already have the plan finish their work
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _one(self, spec: HostSpec) -> list[HostResult]:
        if self._stop.is_set():
            return [HostResult(str(spec), "skipped", note=SKIPPED_NOTE)]
        try:
            results = _host(self._settings, spec, self._warn, self._run, self._gate, self._cancel)
        except PlanAbandoned:
            return [HostResult(str(spec), "skipped", note="the secrets did not validate")]
        except Exception as exc:  # one host's bug must not abandon the other hosts
            result = HostResult(str(spec), "failed")
            result.error = RemoteError(
                f"{spec}: unexpected {type(exc).__name__}: {exc}",
                "this is a bug in sops-deploy; please report it with the log above",
            )
            results = [result]
        if any(r.failed for r in results) and self._settings.fail_fast:
            self._stop.set()
        return results


SKIPPED_NOTE = "not started: another host failed and --fail-fast is set"
NOT_ATTEMPTED_NOTE = "not attempted: a --canary host failed, so this host was never connected"
