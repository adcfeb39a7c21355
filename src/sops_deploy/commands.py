"""What each command does, after `cli.py` parsed it: settings from flags, environment and
sops-deploy.yaml, then validate / deploy / check / diff / hosts / tools / maintainer
commands. `run` is the one place where a `SopsDeployError` becomes a message and an exit
code (0 ok · 1 runtime · 2 usage · 3 drift · 4 validation · 5 decryption).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypedDict

from sops_deploy import maintain
from sops_deploy.config import (
    HostSpec,
    Settings,
    age_source,
    check_format,
    check_remote_path,
    env_flag,
    env_number,
    env_value,
    parse_host,
    parse_mode,
    split_list,
)
from sops_deploy.defaults import DEFAULT_FILE
from sops_deploy.errors import EXIT_DRIFT, EXIT_OK, EXIT_RUNTIME, SopsDeployError, UsageError
from sops_deploy.report import Reporter

if TYPE_CHECKING:
    from sops_deploy.deploy import Plan


class _Safety(TypedDict):
    backup: int
    post_command: str | None
    post_command_timeout: float
    rollback_on_failure: bool
    lock_timeout: float


def _safety_settings(args: argparse.Namespace, env: Mapping[str, str]) -> _Safety:
    """--backup, --post-command, --rollback-on-failure, --lock-timeout (deploy only)."""

    def number(flag: str, kind: type[int] | type[float], default: float) -> float:
        value = getattr(args, flag, None)
        if value is None:
            value = env_number(env, flag.upper(), kind)
        if value is None:
            return default
        if value < 0:
            raise UsageError(
                f"--{flag.replace('_', '-')} {value:g} must not be negative",
                f"use --{flag.replace('_', '-')} {default:g}",
            )
        return value

    rollback = getattr(args, "rollback_on_failure", None)
    if rollback is None:
        rollback = env_flag(env, "ROLLBACK_ON_FAILURE")
    command = getattr(args, "post_command", None) or env_value(env, "POST_COMMAND")
    if command is not None and ("\x00" in command or not command.strip()):
        raise UsageError(
            "--post-command is empty or contains a NUL character",
            "pass a shell command such as 'docker compose up -d'",
        )
    return {
        "backup": int(number("backup", int, 5)),
        "post_command": command,
        "post_command_timeout": number("post_command_timeout", float, 300.0) or 300.0,
        "rollback_on_failure": True if rollback is None else rollback,
        "lock_timeout": number("lock_timeout", float, 60.0),
    }


def settings_from(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    """Merge flags over SOPS_DEPLOY_* environment over defaults, validating everything."""

    def pick(flag: str, name: str | None = None) -> str | None:
        value = getattr(args, flag, None)
        if value is not None:
            return str(value)
        return env_value(env, name or flag.upper())

    def pick_list(flag: str, name: str | None = None) -> tuple[str, ...]:
        value = getattr(args, flag, None)
        if isinstance(value, str):
            value = [value]
        if value:
            return tuple(v for item in value for v in split_list(item))
        return split_list(env_value(env, name or flag.upper()))

    def pick_bool(flag: str) -> bool:
        value = getattr(args, flag, None)
        if value is not None:
            return bool(value)
        return bool(env_flag(env, flag.upper()))

    from sops_deploy import configfile

    env = configfile.merged_env(getattr(args, "config", None), getattr(args, "env", None), env)
    command = args.command
    fmt = check_format(pick("format") or "compose")
    files = pick_list("file") or (DEFAULT_FILE,)
    required = pick_list("required") or split_list(env.get("REQUIRED_KEYS"))
    settings = Settings(
        command=command,
        files=files,
        required=required,
        schema=pick("schema"),
        format=fmt,
        age=age_source(env, pick("age_key_file")),
        export_env=pick_list("export_env"),
    )
    if command not in ("deploy", "check", "diff"):
        return settings

    hosts = _hosts(pick_list("host"), pick("port"))
    if not hosts:
        raise UsageError(
            "no host given",
            "pass --host user@server (repeatable), set the action input `host`, "
            "or pick an environment of sops-deploy.yaml with --env NAME",
        )
    jump = pick("jump_host")
    timeout = args.timeout if args.timeout is not None else env_number(env, "TIMEOUT", float)
    retries = args.retries if args.retries is not None else env_number(env, "RETRIES", int)
    parallel = args.parallel if args.parallel is not None else env_number(env, "PARALLEL", int)
    if parallel is not None and parallel < 1:
        raise UsageError(f"--parallel {parallel} must be at least 1", "use --parallel 8")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout {timeout} must be positive", "use --timeout 20")
    return Settings(
        command=command,
        files=files,
        required=required,
        schema=settings.schema,
        format=fmt,
        age=settings.age,
        hosts=tuple(hosts),
        user=pick("user"),
        remote_path=check_remote_path(pick("remote_path") or ""),
        ssh_key=env.get("SSH_PRIVATE_KEY") or None,
        ssh_key_file=pick("ssh_key_file"),
        ssh_passphrase=env.get("SSH_PRIVATE_KEY_PASSPHRASE") or None,
        known_hosts=pick("known_hosts"),
        fingerprints=pick_list("host_key_fingerprint"),
        insecure_any_host_key=pick_bool("insecure_accept_any_host_key"),
        jump_host=parse_host(jump, what="--jump-host") if jump else None,
        file_mode=parse_mode(pick("file_mode") or "0600"),
        timeout=float(timeout) if timeout is not None else 20.0,
        retries=int(retries) if retries is not None else 2,
        parallel=int(parallel) if parallel is not None else 8,
        fail_fast=pick_bool("fail_fast"),
        follow_symlinks=pick_bool("follow_symlinks"),
        dry_run=pick_bool("dry_run") if command == "deploy" else False,
        **_safety_settings(args, env),
        export_env=settings.export_env,
    )


def _hosts(texts: Sequence[str], port_text: str | None) -> list[HostSpec]:
    """Parse host specs; `port_text` (--port) applies to the hosts that name no port."""
    default_port = _int(port_text, "--port") if port_text else None
    hosts = []
    for text in texts:
        spec = parse_host(text)
        if default_port is not None and f":{spec.port}" not in text.rsplit("]", 1)[-1]:
            spec = type(spec)(spec.host, default_port, spec.user)
        hosts.append(spec)
    return hosts


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{what} {text!r} is not a number", f"pass {what} 22") from None


# --- commands -------------------------------------------------------------------------


def _plan(settings: Settings, reporter: Reporter) -> Plan:
    from sops_deploy import deploy, tools

    sops_bin = tools.find_sops()
    decrypted = deploy.decrypt_all(settings, sops_bin)
    plan = deploy.build_plan(settings, decrypted, reporter.mask)
    reporter.problems(plan.warnings)
    if settings.export_env:
        reporter.export_env({k: e.value for k, e in plan.secrets.items()}, settings.export_env)
    return plan


def cmd_validate(settings: Settings, reporter: Reporter) -> int:
    plan = _plan(settings, reporter)
    keys = ", ".join(plan.secrets) if plan.secrets else "(raw file)"
    print(
        f"✓ {', '.join(settings.files)}: {len(plan.secrets)} keys valid for the "
        f"{settings.format} format, sha256 {plan.sha256[:12]}"
    )
    print(f"  keys: {keys}")
    reporter.set_outputs({"sha256": plan.sha256})
    return EXIT_OK


def cmd_remote(settings: Settings, reporter: Reporter) -> int:
    from concurrent.futures import Future, ThreadPoolExecutor

    from sops_deploy import deploy

    # Every host is connected while sops decrypts and the plan is checked (the shell
    # pipeline overlaps them too); nothing is done on a host until the plan is ready.
    pending: Future[Plan] = Future()
    mode = "deploy" if settings.command == "deploy" else settings.command
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hosts") as runner:
        applied = runner.submit(
            deploy.apply_all, settings, pending, mode, reporter.warn, reporter.host_result
        )
        try:
            plan = _plan(settings, reporter)
            _announce(settings, plan, reporter)
        except BaseException:
            pending.set_exception(deploy.PlanAbandoned())  # the hosts stop, untouched
            raise
        try:
            pending.set_result(plan)
            results = applied.result()
        finally:
            reporter.endgroup()
    reporter.summary(settings.command, plan, results)
    if any(r.failed for r in results):
        return EXIT_RUNTIME
    if settings.command == "check" and any(r.status == "drift" for r in results):
        return EXIT_DRIFT
    return EXIT_OK


def _announce(settings: Settings, plan: Plan, reporter: Reporter) -> None:
    """What is about to happen, then the group that holds the per-host progress."""
    if settings.insecure_any_host_key:
        reporter.warn("--insecure-accept-any-host-key is set: host keys are NOT verified")
    what = {
        "deploy": "dry run" if settings.dry_run else "deploying",
        "check": "checking",
        "diff": "comparing",
    }[settings.command]
    reporter.info(
        f"{what} {len(plan.secrets)} keys to {len(settings.hosts)} host(s): {settings.remote_path}"
    )
    reporter.group(f"sops-deploy {settings.command}: per-host progress")


def cmd_tools(args: argparse.Namespace, reporter: Reporter, env: Mapping[str, str]) -> int:
    from sops_deploy import tools

    def opt(flag: str) -> str | None:
        value = getattr(args, flag)
        return str(value) if value is not None else env_value(env, flag.upper())

    source = opt("source") or "auto"
    mirror = opt("mirror")
    if source == "mirror":
        if not mirror:
            raise UsageError("--source mirror needs --mirror URL", "pass --mirror https://host")
        source = "release"
    allow = bool(args.allow_unverified) or bool(env_flag(env, "ALLOW_UNVERIFIED"))
    for tool in tools.TOOLS if args.tool == "all" else (args.tool,):
        version = opt(f"{tool}_version") or tools.default_version(tool)
        path = tools.install(
            tool,
            version,
            source,
            mirror=mirror,
            sha256=opt(f"{tool}_sha256"),
            allow_unverified=allow,
            warn=reporter.warn,
        )
        reporter.info(f"{tool} {version}: {path}")
        print(path)
    return EXIT_OK


def cmd_hosts(args: argparse.Namespace, env: Mapping[str, str], reporter: Reporter) -> int:
    """Print the hosts of the chosen environment, one per line or as a matrix JSON list."""
    from sops_deploy import configfile

    env = configfile.merged_env(args.config, args.env, env)
    texts = args.host or list(split_list(env_value(env, "HOST")))
    port = str(args.port) if args.port is not None else env_value(env, "PORT")
    user = args.user or env_value(env, "USER")
    hosts = _hosts(texts, port)
    if not hosts:
        raise UsageError("no host given", "pass --env NAME of sops-deploy.yaml, or --host")
    if user:
        hosts = [h if h.user else HostSpec(h.host, h.port, user) for h in hosts]
    if args.json:
        matrix = json.dumps(matrix_entries(hosts))
        print(matrix)
        reporter.set_outputs({"hosts-json": matrix})
    else:
        for spec in hosts:
            print(spec)
    return EXIT_OK


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


SECRET_ENV = ("AGE_KEY", "SOPS_AGE_KEY", "SSH_PRIVATE_KEY", "SSH_PRIVATE_KEY_PASSPHRASE")

COMMANDS: dict[str, Callable[[Settings, Reporter], int]] = {
    "deploy": cmd_remote,
    "check": cmd_remote,
    "diff": cmd_remote,
    "validate": cmd_validate,
}


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Run one parsed command; every SopsDeployError becomes its message and exit code here."""
    reporter = Reporter(env=environ)
    try:
        if args.command == "tools":
            return cmd_tools(args, reporter, environ)
        if args.command == "hosts":
            return cmd_hosts(args, environ, reporter)
        # Key material is masked before anything else can print.
        reporter.mask_keys(environ[k] for k in SECRET_ENV if environ.get(k, "").strip())
        if args.command in maintain.COMMANDS:
            return maintain.run(args, environ, reporter)
        if args.command == "github-sync":
            from sops_deploy.github.command import cmd_github_sync

            return cmd_github_sync(args, environ, reporter)
        settings = settings_from(args, environ)
        reporter.mask_keys(settings.secret_texts())
        return COMMANDS[args.command](settings, reporter)
    except SopsDeployError as exc:
        reporter.failure(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        reporter.info("interrupted")
        return 130
