"""What validate, deploy, check, diff, hosts and tools do, given typed options.

`cli.main` parsed and resolved every input (`inputs.py`, `options.py`) and holds the one
error boundary; the commands here receive a `Settings` (or their options dataclass) and a
`Reporter`, return nothing on success and raise a `SopsDeployError` — carrying its exit
code — otherwise (`HostsFailed`, `DriftFound` after the per-host report).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sops_deploy.errors import DriftFound, HostsFailed
from sops_deploy.inputs.settings import HostSpec, Settings
from sops_deploy.output.reporter import Reporter

if TYPE_CHECKING:
    from sops_deploy.inputs.commandopts import HostsOptions, ToolsOptions
    from sops_deploy.interrupt import Cancel
    from sops_deploy.plan.background import Started
    from sops_deploy.plan.build import Plan
    from sops_deploy.plan.decrypt import Decrypted


# --- commands -------------------------------------------------------------------------


def _plan(settings: Settings, reporter: Reporter, decrypting: Started[Decrypted | None]) -> Plan:
    from sops_deploy.plan.build import build_plan  # validate never loads deploy
    from sops_deploy.plan.decrypt import decrypt_all

    decrypted = decrypting.result() or decrypt_all(settings, "")  # none given: it says so
    plan = build_plan(settings, decrypted, reporter.mask)
    reporter.problems(plan.warnings)
    if settings.export_env:
        reporter.export_env({k: e.value for k, e in plan.secrets.items()}, settings.export_env)
    return plan


def cmd_validate(settings: Settings, reporter: Reporter) -> None:
    from sops_deploy.plan import background

    plan = _plan(settings, reporter, background.decrypting(settings))  # sops runs meanwhile
    keys = ", ".join(plan.secrets) if plan.secrets else "(raw file)"
    formats = ", ".join(dict.fromkeys(t.target.format for t in plan.targets)) or settings.format
    reporter.line(
        f"✓ {', '.join(settings.files)}: {len(plan.secrets)} keys valid for the "
        f"{formats} format, sha256 {plan.sha256[:12]}"
    )
    reporter.line(f"  keys: {keys}")
    if plan.expanded:
        reporter.line(f"  expanded (--interpolate): {', '.join(plan.expanded)}")
    for part in plan.targets if settings.targets else ():
        names = ", ".join(part.secrets) or "(none)"
        reporter.line(f"  → {part.target.label} ({part.target.format}): {names}")
    reporter.set_outputs({"sha256": plan.sha256})


def cmd_remote(settings: Settings, reporter: Reporter, cancel: Cancel | None = None) -> None:
    """deploy, check, diff: every host, in parallel; `cancel` (the front door's token, set
    by its signal handlers) stops them at the next safe point."""
    from sops_deploy import interrupt
    from sops_deploy.plan import background

    # sops starts first and Paramiko loads meanwhile (plan/background.py); every host is
    # connected while sops decrypts and the plan is checked (the shell pipeline overlaps
    # them too); nothing is done on a host until the plan is valid.
    decrypting = background.decrypting(settings)
    background.connecting(settings)
    from sops_deploy.deploy.rollout import Rollout

    cancel = interrupt.Cancel() if cancel is None else cancel
    with Rollout(settings, reporter.warn, reporter.host_result, cancel=cancel) as rollout:
        plan = _plan(settings, reporter, decrypting)  # a failure leaves the rollout
        _announce(settings, plan, reporter)
        try:
            with cancel.hosts_running():  # a signal now stops the hosts at a safe point
                results = rollout.apply(plan)
        finally:
            reporter.endgroup()
    reporter.summary(settings.command, plan, results)
    if cancel.is_set():
        raise cancel.interrupted(
            f"interrupted by {cancel.signal_name}: the summary above says what each host holds now",
            "deploy again when ready (the lock was released; no temp file is left)",
        )
    failed = list(dict.fromkeys(r.host for r in results if r.failed))
    if failed:
        raise HostsFailed(f"{len(failed)} host(s) failed: {', '.join(map(str, failed))}")
    drifted = list(dict.fromkeys(r.host for r in results if r.status == "drift"))
    if settings.command == "check" and drifted:
        raise DriftFound(f"{len(drifted)} host(s) differ: {', '.join(map(str, drifted))}")


def _announce(settings: Settings, plan: Plan, reporter: Reporter) -> None:
    """What is about to happen, then the group that holds the per-host progress."""
    if settings.insecure_any_host_key:
        reporter.warn("--insecure-accept-any-host-key is set: host keys are NOT verified")
    what = {
        "deploy": "dry run" if settings.dry_run else "deploying",
        "check": "checking",
        "diff": "comparing",
    }[settings.command]
    paths = ", ".join(t.label for t in settings.outputs())
    reporter.info(f"{what} {len(plan.secrets)} keys to {len(settings.hosts)} host(s): {paths}")
    reporter.group(f"sops-deploy {settings.command}: per-host progress")


def cmd_tools(opts: ToolsOptions, reporter: Reporter) -> None:
    """Install each tool (a no-op when cached and verified); its path on stdout, one per
    line; each slow step (download, a `go install` build) announced on stderr."""
    from sops_deploy import interrupt
    from sops_deploy.sops import tools

    for tool in opts.tools:
        version = opts.versions.get(tool) or tools.default_version(tool)
        try:
            path = tools.install(
                opts.places,
                tool,
                version,
                opts.source,
                mirror=opts.mirror,
                sha256=opts.sha256.get(tool),
                allow_unverified=opts.allow_unverified,
                warn=reporter.warn,
                say=reporter.info,
            )
        except interrupt.Interrupted as exc:
            raise interrupt.Interrupted(
                f"{exc.message} while installing {tool} {version}: nothing of it was "
                "installed (the partial build was removed)",
                "run `sops-deploy tools install` again when ready",
                exc.signum,
            ) from None
        reporter.info(f"{tool} {version}: {path}")
        reporter.line(str(path))


def cmd_hosts(opts: HostsOptions, reporter: Reporter) -> None:
    """Print the hosts of the chosen environment, one per line or as a matrix JSON list."""
    if opts.json:
        matrix = json.dumps(matrix_entries(opts.hosts))
        reporter.line(matrix)
        reporter.set_outputs({"hosts-json": matrix})
    else:
        for spec in opts.hosts:
            reporter.line(str(spec))


def matrix_entries(hosts: Sequence[HostSpec]) -> list[dict[str, str]]:
    """`[{"host": "user@host:port", "name": "host[:port]"}]`: one GitHub matrix job each.

    `host` is what `--host` accepts; `name` is short and stable, for job names.
    """
    out = []
    for spec in hosts:
        bare = f"[{spec.host}]" if ":" in spec.host else spec.host
        name = bare if spec.port == 22 else f"{bare}:{spec.port}"
        out.append({"host": str(spec), "name": name})
    return out
