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

from sops_deploy import __version__, agekey, deploy, sops, tools
from sops_deploy.config import HostSpec, Settings
from sops_deploy.errors import ChecksFailed, SopsDeployError, ValidationError
from sops_deploy.maintain import sopsconfig
from sops_deploy.report import Reporter


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, whether it holds, and how to fix it."""

    name: str
    ok: bool
    detail: str = ""
    fix: str = ""


def _failed(name: str, exc: SopsDeployError) -> Check:
    return Check(name, False, exc.message, exc.hint)


def checks(settings: Settings, config: Path | None, reporter: Reporter) -> Iterator[Check]:
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
    if not settings.age.given:
        yield Check(
            "age key",
            False,
            "no AGE_KEY, SOPS_AGE_KEY, SOPS_AGE_KEY_FILE or --age-key-file",
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

    decrypted: list[tuple[sops.EncryptedFile, bytes]] = []
    for path in settings.files:
        try:
            enc = sops.inspect(path)
        except SopsDeployError as exc:
            yield _failed(f"{path}", exc)
            continue
        yield from _recipient_checks(enc, mine, rules, config)
        if sops_bin is None or not settings.age.given:
            continue
        try:
            decrypted.append((enc, sops.decrypt(sops_bin, enc, settings.age)))
            yield Check(f"{path} decrypts", True)
        except SopsDeployError as exc:
            yield _failed(f"{path} decrypts", exc)
    if decrypted and len(decrypted) == len(settings.files):
        try:
            plan = deploy.build_plan(settings, decrypted, reporter.mask)
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

    for spec in settings.hosts:
        yield _host_check(settings, spec, reporter.warn)


def _recipient_checks(
    enc: sops.EncryptedFile,
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
    yield Check(name, True, f"{len(enc.recipients)} recipient(s), your key among them")


def _host_check(settings: Settings, spec: HostSpec, warn: Callable[[str], None]) -> Check:
    name = f"host {spec}"
    if not (settings.ssh_key or settings.ssh_key_file):
        from sops_deploy.maintain import hostkeys
        from sops_deploy.remote import Trust, fingerprint, verify_host_key

        try:
            key = hostkeys.fetch(spec, settings.timeout)
            verify_host_key(spec, key, Trust(settings.known_hosts, settings.fingerprints), warn)
        except SopsDeployError as exc:
            return _failed(name, exc)
        return Check(
            name,
            True,
            f"reachable, host key {fingerprint(key)} pinned (no SSH key given: login not tried)",
        )
    from sops_deploy.remote import atomic

    try:
        with deploy.open_host(settings, spec, warn) as conn:
            detail = f"reachable, host key pinned, logged in as {conn.user}"
            if settings.remote_path:
                path = conn.resolve(settings.remote_path)
                atomic.current(conn, path, follow_symlinks=True)
                detail += f", {path.rsplit('/', 1)[0] or '/'} exists"
    except SopsDeployError as exc:
        return _failed(name, exc)
    return Check(name, True, detail)


def run_doctor(settings: Settings, config: Path | None, reporter: Reporter) -> None:
    failed = 0
    for check in checks(settings, config, reporter):
        mark = "✓" if check.ok else "✗"
        reporter.line(f"{mark} {check.name}" + (f": {check.detail}" if check.detail else ""))
        if not check.ok:
            failed += 1
            if check.fix:
                reporter.line(f"    fix: {check.fix}")
    if failed:
        reporter.line(f"{failed} check(s) failed")
        raise ChecksFailed(f"{failed} check(s) failed")
    reporter.line("all checks passed")
