"""`sops-deploy doctor`: every precondition of a deploy, checked, one ✓/✗ line each.

Each ✗ names its fix. Checks run in dependency order and go on after a failure where
they still can, so one run shows every problem. Exit 0 only when every check passes,
1 (`ChecksFailed`) otherwise.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sops_deploy import __version__
from sops_deploy.deploy import rollout
from sops_deploy.errors import ChecksFailed, SopsDeployError, ValidationError
from sops_deploy.inputs.settings import HostSpec, Settings
from sops_deploy.maintain import keyaccess, sopsconfig
from sops_deploy.output.reporter import Reporter
from sops_deploy.sops import agekey, runner, tools

if TYPE_CHECKING:
    from sops_deploy.remote import identities
    from sops_deploy.sops.sshage import SshIdentity


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, whether it holds, and how to fix it."""

    name: str
    ok: bool
    detail: str = ""
    fix: str = ""
    warning: bool = False  # holds, but something is missing: `!`, with its fix; not a failure


def _failed(name: str, exc: SopsDeployError) -> Check:
    return Check(name, False, exc.message, exc.hint)


def checks(
    settings: Settings, config: Path | None, reporter: Reporter, format_chosen: bool = True
) -> Iterator[Check]:
    """Yield every check in order; never raises a SopsDeployError."""
    yield Check("sops-deploy", True, f"{__version__} on Python {platform.python_version()}")
    sops_bin: str | None = None
    try:
        sops_bin = tools.find_sops(settings.tools)
        found = tools.version_of(sops_bin, settings.tools.env)
        version = ".".join(map(str, found)) if found else "unknown version"
        yield Check("sops", True, f"{version} at {sops_bin}")
    except SopsDeployError as exc:
        yield _failed("sops", exc)

    rules: list[sopsconfig.Rule] = []
    if config is None:
        yield Check(
            ".sops.yaml",
            False,
            "not found here or in any parent directory",
            "run `sops-deploy init` (see README#faq-sopsyaml)",
        )
    else:
        try:
            _, rules = sopsconfig.load(config)
            yield Check(".sops.yaml", True, f"{config}: {len(rules)} rule(s)")
        except SopsDeployError as exc:
            yield _failed(".sops.yaml", exc)

    mine: list[str] = []
    age = settings.age
    if not age.given and age.key_cmd:
        yield Check("age key", True, "from SOPS_AGE_KEY_CMD (sops runs it)")
    elif not age.given and _ssh_opens_all(settings):
        yield Check("age key", True, f"none needed: {age.ssh_source} opens every file")
    elif not age.given and _other_backends_for_all(settings):
        yield Check("age key", True, "none given; every file has other key groups (below)")
    elif not age.given:
        yield Check(
            "age key",
            False,
            "no AGE_KEY, SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD or --age-key-file",
            'export AGE_KEY="$(cat secrets/age-key.txt)" (see README#faq-no-key-could-decrypt)',
        )
    elif settings.age.text is None and not Path(settings.age.file or "").is_file():
        yield Check(
            "age key",
            False,
            f"the age key file {settings.age.file} does not exist",
            "pass the file that holds AGE-SECRET-KEY-1… (init writes secrets/age-key.txt)",
        )
    else:
        try:
            mine = agekey.recipients_of(settings.age.key_text() or "")
            yield Check("age key", True, f"public key {', '.join(mine)}")
        except SopsDeployError as exc:
            yield _failed("age key", exc)

    decrypted: list[tuple[runner.EncryptedFile, bytes]] = []
    for path in settings.files:
        try:
            enc = runner.inspect(path)
        except SopsDeployError as exc:
            yield _failed(f"{path}", exc)
            continue
        try:
            ssh = age.ssh_identity(enc.recipients)
        except SopsDeployError as exc:
            yield _failed(f"{path}: {age.ssh_source}", exc)
            ssh = None
        if enc.recipients or not enc.groups:
            yield from _recipient_checks(enc, [] if ssh else mine, rules, config)
        env = {**age.base, **age.backend}
        access = list(keyaccess.check(enc.groups, env, age.interface, settings.timeout))
        for acc in access:
            yield Check(f"{path} key {acc.key.label}", acc.ok, acc.detail, acc.fix)
        usable = sorted({a.key.label.split(" ", 1)[0] for a in access if a.ok})
        if sops_bin is None or not (age.given or age.key_cmd or ssh or usable):
            continue
        who = _identity(enc, mine, ssh, age, usable)
        try:
            decrypted.append((enc, runner.decrypt(sops_bin, enc, age)))
            yield Check(f"{path} decrypts with {who}", True)
        except SopsDeployError as exc:
            yield _failed(f"{path} decrypts", exc)
    if decrypted and len(decrypted) == len(settings.files):
        try:
            plan = rollout.build_plan(settings, decrypted, reporter.mask)
            yield Check(
                "secrets valid",
                True,
                f"{len(plan.secrets)} keys for the {settings.format} format"
                + (
                    f", required {', '.join(settings.required)} present"
                    if settings.required
                    else ""
                ),
            )
        except ValidationError as exc:
            first = exc.problems[0] if exc.problems else None
            yield Check(
                "secrets valid",
                False,
                f"{exc.message}" + (f"; first: {first}" if first else ""),
                "fix each problem (`sops-deploy validate` lists them all), see "
                "README#faq-validation-failed",
            )
        except SopsDeployError as exc:
            yield _failed("secrets valid", exc)

    if not format_chosen and not settings.targets:
        yield Check(
            "format",
            True,
            "no format chosen: deploys write Docker Compose's syntax (`$` as `$$`), which "
            "python-dotenv, a shell or systemd would read differently",
            "name the program that reads the file: `format:` in secrets/sops-deploy.yaml "
            "(compose, dotenv, node, shell, systemd, docker) or --format",
            warning=True,
        )
    elif settings.hosts or settings.targets:
        yield Check("format", True, f"{settings.format} (the reader the deploy writes for)")
    for spec in settings.hosts:
        yield from _ssh_checks(settings, spec)
        yield _host_check(settings, spec, reporter.warn)


def _other_backends_for_all(settings: Settings) -> bool:
    """Whether every file has a non-age master key (then no age key is needed)."""
    try:
        groups = [runner.inspect(path).groups for path in settings.files]
    except SopsDeployError:
        return False
    return bool(groups) and all(any(m.kind != "age" for g in gs for m in g) for gs in groups)


def _ssh_opens_all(settings: Settings) -> bool:
    """Whether the SSH key is a recipient of every file (then no age key is needed)."""
    if not (settings.age.ssh_key or settings.age.ssh_key_file):
        return False
    try:
        return all(
            settings.age.ssh_identity(runner.inspect(path).recipients) is not None
            for path in settings.files
        )
    except SopsDeployError:
        return False


def _identity(
    enc: runner.EncryptedFile,
    mine: list[str],
    ssh: SshIdentity | None,
    age: runner.AgeKeySource,
    usable: list[str],
) -> str:
    """Which identity opens `enc`: the age key whose recipient it lists, the SSH key, or
    sops's key command."""
    listed = [r for r in mine if r in enc.recipients]
    if listed:
        return f"the age key ({listed[0]})"
    if ssh is not None:
        return f"{age.ssh_source} ({ssh.label})"
    if age.key_cmd:
        return "SOPS_AGE_KEY_CMD"
    if not age.given and usable:
        return "the " + "/".join(usable) + " credentials"
    return "the age key"


def _ssh_checks(settings: Settings, spec: HostSpec) -> Iterator[Check]:
    """What ~/.ssh/config sets for this host (each value with file and line), and the
    keys that will be offered to it, in order."""
    if settings.ssh is None:
        return
    from sops_deploy.remote import identities
    from sops_deploy.ssh.route import for_settings

    try:
        route = for_settings(settings, spec)
    except SopsDeployError as exc:
        yield _failed(f"ssh config for {spec.host}", exc)
        return
    resolved = route.resolved if route else None
    if route is not None and (route.resolved.changed or route.jump_resolved is not None):
        where = f"{route.target}" + (f" via {route.jump}" if route.jump else "")
        yield Check(f"ssh config for {spec.host}", True, f"{where}: {route.describe()}")
    try:
        with keys(settings).gather(resolved) as found:
            if not found.keys:  # doctor still checks the host key; login is not tried
                error = identities.nothing_to_offer(found, ci=settings.ci)
                yield Check(f"keys for {spec.host}", True, error.message, error.hint, warning=True)
            else:
                yield Check(f"keys for {spec.host}", True, found.describe())
    except SopsDeployError as exc:
        yield _failed(f"keys for {spec.host}", exc)


def _recipient_checks(
    enc: runner.EncryptedFile,
    mine: list[str],
    rules: list[sopsconfig.Rule],
    config: Path | None,
) -> Iterator[Check]:
    name = f"{enc.path} recipients"
    if mine and not set(mine) & set(enc.recipients):
        yield Check(
            name,
            False,
            f"your age key ({', '.join(mine)}) is not a recipient; the file is encrypted "
            f"for {', '.join(enc.recipients) or 'nobody (no age recipient)'}",
            f"on a machine that can decrypt: `sops-deploy recipients add {mine[0]}`, then "
            "commit (see README#faq-no-key-could-decrypt)",
        )
        return
    if config is not None and rules:
        try:
            relative = Path(enc.path).resolve().relative_to(config.parent.resolve()).as_posix()
        except ValueError:
            relative = enc.path
        rule = next((r for r in rules if r.matches(relative)), None)
        if rule is None:
            yield Check(
                name,
                False,
                f"no creation rule in {config.name} matches {relative}",
                f"add a rule whose path_regex matches it, e.g. {sopsconfig.DOTENV_RULE}",
            )
            return
        if set(rule.recipients) != set(enc.recipients):
            missing = sorted(set(rule.recipients) - set(enc.recipients))
            extra = sorted(set(enc.recipients) - set(rule.recipients))
            yield Check(
                name,
                False,
                f"out of sync with {config.name}: missing {', '.join(missing) or '–'}, "
                f"extra {', '.join(extra) or '–'}",
                f"re-key it: `sops updatekeys -y --input-type {enc.stored_format} {enc.path}` "
                "(or `sops-deploy recipients add|remove age1…`), then commit",
            )
            return
    among = ", your key among them" if mine else ""
    yield Check(name, True, f"{len(enc.recipients)} age recipient(s){among}")


def _host_check(settings: Settings, spec: HostSpec, warn: Callable[[str], None]) -> Check:
    name = f"host {spec}"
    if not (settings.ssh_key or settings.ssh_key_file or _other_keys(settings, spec)):
        from sops_deploy.maintain import hostkeys
        from sops_deploy.remote import Trust, fingerprint, verify_host_key
        from sops_deploy.ssh.route import for_settings

        try:
            route = for_settings(settings, spec)  # an alias's HostName and Port
            target = route.target if route else spec
            key = hostkeys.fetch(target, settings.timeout)
            verify_host_key(target, key, Trust(settings.known_hosts, settings.fingerprints), warn)
        except SopsDeployError as exc:
            return _failed(name, exc)
        return Check(
            name,
            True,
            f"reachable, host key {fingerprint(key)} pinned (no SSH key: login not tried)",
        )
    from sops_deploy.remote import atomic

    try:
        with rollout.open_host(settings, spec, warn) as conn:
            detail = f"reachable, host key pinned, logged in as {conn.user}"
            if settings.remote_path:
                path = conn.resolve(settings.remote_path)
                atomic.current(conn, path, follow_symlinks=True)
                detail += f", {path.rsplit('/', 1)[0] or '/'} exists"
    except SopsDeployError as exc:
        return _failed(name, exc)
    return Check(name, True, detail)


def run_doctor(
    settings: Settings, config: Path | None, reporter: Reporter, *, format_chosen: bool = True
) -> None:
    failed = warned = 0
    for check in checks(settings, config, reporter, format_chosen):
        mark = "✗" if not check.ok else "!" if check.warning else "✓"
        reporter.line(f"{mark} {check.name}" + (f": {check.detail}" if check.detail else ""))
        failed += not check.ok
        warned += check.ok and check.warning
        if (not check.ok or check.warning) and check.fix:
            reporter.line(f"    fix: {reporter.fix(check.fix)}")
    if failed:
        reporter.line(f"{failed} check(s) failed")
        raise ChecksFailed(f"{failed} check(s) failed")
    reporter.line("all checks passed" + (f", {warned} warning(s) (!)" if warned else ""))


def keys(settings: Settings) -> identities.KeyInputs:
    from sops_deploy.remote import identities

    return identities.KeyInputs(
        settings.ssh_key,
        settings.ssh_key_file,
        settings.ssh_passphrase,
        settings.ssh,
        settings.ci,
        settings.timeout,
    )


def _other_keys(settings: Settings, spec: HostSpec) -> bool:
    """Whether the agent or an identity file has a key for this host (login is tried)."""
    if settings.ssh is None:
        return False
    try:
        resolved = settings.ssh.lookup(spec.host, spec.user or settings.user)
        with keys(settings).gather(resolved) as found:
            return bool(found.keys)
    except SopsDeployError:
        return True  # let the login attempt report it
