"""`sops-deploy github-sync`: options, decrypt and check the file, plan, apply, report.

Options come resolved from the front door (`inputs.py`: flags, then `SOPS_DEPLOY_*` /
action inputs, then the environment's `github:` section of sops-deploy.yaml, then
GITHUB_REPOSITORY); `options` checks how they combine. The token comes only from
`GH_TOKEN` or `GITHUB_TOKEN` (in that order, like the gh CLI) and is masked before
anything prints. Every bad GitHub name is reported (exit 4) before any request is made.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sops_deploy.envfile import Entry, Secrets
from sops_deploy.errors import DriftFound, UsageError, ValidationError
from sops_deploy.github import names
from sops_deploy.github import plan as planning
from sops_deploy.github.client import DEFAULT_API, Api, Client, Scope
from sops_deploy.inputs.settings import Settings
from sops_deploy.output import mdsafe
from sops_deploy.output.reporter import Reporter

if TYPE_CHECKING:
    from sops_deploy.plan.publicity import Publicity
    from sops_deploy.sops.runner import EncryptedFile

_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Options:
    repo: str
    environment: str | None
    dependabot: bool
    keys: tuple[str, ...]
    prefix: str
    dry_run: bool
    check: bool
    prune: bool

    @property
    def scope(self) -> Scope:
        if self.dependabot:
            return Scope(self.repo, "dependabot")
        if self.environment:
            return Scope(self.repo, "environment", self.environment)
        return Scope(self.repo)


@dataclass(frozen=True)
class SyncRequest:
    """Everything github-sync needs: the source settings, the options, where and as whom."""

    settings: Settings
    options: Options
    token: str = field(repr=False)
    api_base: str = DEFAULT_API


def options(v: Mapping[str, Any]) -> Options:
    """The resolved values as Options; the combinations that make no sense are refused."""
    repo = v["repo"] or ""
    if not _REPO.match(repo):
        raise UsageError(
            f"--repo {repo!r} is not OWNER/REPO" if repo else "no repository given",
            "pass --repo OWNER/REPO (on GitHub Actions it defaults to GITHUB_REPOSITORY)",
        )
    environment = v["github_environment"]
    dependabot = bool(v["dependabot"])
    if environment and dependabot:
        raise UsageError(
            "--github-environment and --dependabot name two different scopes",
            "run github-sync once per scope",
        )
    prefix = v["prefix"] or ""
    check, dry_run = bool(v["check"]), bool(v["dry_run"])
    if check and dry_run:
        raise UsageError("--check and --dry-run both only look", "pass one of them")
    keys = tuple(v["keys"])
    return Options(repo, environment, dependabot, keys, prefix, dry_run, check, bool(v["prune"]))


def token(env: Mapping[str, str]) -> str:
    for name in ("GH_TOKEN", "GITHUB_TOKEN"):
        if env.get(name, "").strip():
            return env[name].strip()
    raise UsageError(
        "no GitHub token: set GH_TOKEN or GITHUB_TOKEN in the environment (never a flag)",
        "in a workflow: `env: {GH_TOKEN: ${{ secrets.SYNC_TOKEN }}}` with a fine-grained "
        'token that has the "Secrets" and "Variables" repository permissions '
        "(see README#sync-github-secrets)",
    )


def select(secrets: Secrets, patterns: tuple[str, ...]) -> list[Entry]:
    """The entries --keys chooses (names or globs); one that matches nothing is an error."""
    if not patterns:
        return list(secrets.values())
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(k, p) for k in secrets)]
    if unmatched:
        raise UsageError(
            f"--keys {', '.join(unmatched)} matches no key of the file",
            "list keys the file defines (K1,K2) or a glob such as 'APP_*'",
        )
    return [e for k, e in secrets.items() if any(fnmatch.fnmatchcase(k, p) for p in patterns)]


def wanted(
    entries: list[Entry], prefix: str, public: set[str], scope: Scope
) -> tuple[planning.Wanted, ...]:
    def kind(key: str) -> str:
        if key in public and scope.variables_path is not None:
            return planning.VARIABLE
        return planning.SECRET

    return tuple(
        planning.Wanted(names.github_name(prefix, e.key), e.key, kind(e.key), e.value)
        for e in entries
    )


def source_id(settings: Settings, prefix: str) -> str:
    """Which files (relative to here) and prefix a name came from: the owner for --prune."""
    files = ",".join(
        f if "://" in f else os.path.relpath(f).replace(os.sep, "/") for f in settings.files
    )
    return f"{files}|{prefix}" if prefix else files


def cmd_github_sync(request: SyncRequest, reporter: Reporter) -> None:
    from sops_deploy.github import sync
    from sops_deploy.github.state import pick_identity
    from sops_deploy.sops import tools

    reporter.mask_keys([request.token])
    settings, opts = request.settings, request.options
    scope = opts.scope
    client = Client(request.token, request.api_base, perms=scope.permissions)

    decrypted, secrets, publicity = load_checked(
        settings, reporter, tools.find_sops(settings.tools)
    )
    chosen = select(secrets, opts.keys)
    problems = names.name_problems(opts.prefix, chosen)
    if problems:
        raise ValidationError(
            problems, "rename the keys (or pass --prefix APP_); nothing was written to GitHub"
        )
    # The masking policy's public keys (publicity.py) become variables, the rest secrets.
    public = {e.key for e in secrets.values() if publicity.is_public(e.key, e.file)}
    want = wanted(chosen, opts.prefix, public, scope)
    everything = wanted(list(secrets.values()), opts.prefix, public, scope)
    in_file = {
        kind: frozenset(w.name for w in everything if w.kind == kind)
        for kind in (planning.SECRET, planning.VARIABLE)
    }
    identity = pick_identity(settings.age.key_text(), decrypted[0][0].recipients)

    api = Api(client, scope)
    observed = sync.observe(api)
    tagger, salt = sync.tagger_for(identity, observed, scope)
    facts = planning.Facts(
        want,
        in_file,
        observed.secrets,
        observed.variables,
        observed.state,
        source_id(settings, opts.prefix),
        tagger.kid,
        opts.prune,
    )
    ops = planning.plan(facts, tagger.tag)
    unproven = [op.name for op in ops if op.reason == planning.UNPROVEN]
    if unproven:
        reporter.warn(
            f"the sync state of {scope.describe()} claims {', '.join(unproven)}, but it is not "
            "sealed by this age identity (written before sops-deploy sealed its state, or "
            "edited by someone who can write Variables): the claim is ignored and nothing is "
            "pruned on its word; delete those by hand if they were created by this sync"
        )
    mode = "check" if opts.check else "dry run" if opts.dry_run else "sync"
    reporter.info(f"github-sync {mode}: {len(want)} key(s) → {scope.describe()}")
    if not (opts.check or opts.dry_run):
        sync.apply(api, facts, ops, tagger, salt, observed, reporter.info)
    _report(reporter, mode, scope, ops, client.writes)
    drift = [op for op in ops if op.writes]
    if opts.check and drift:
        raise DriftFound(f"{len(drift)} name(s) on GitHub differ from the file")


def load_checked(
    settings: Settings, reporter: Reporter, sops_bin: str
) -> tuple[list[tuple[EncryptedFile, bytes]], Secrets, Publicity]:
    """Decrypt, parse, lint and schema-check every file (as `validate` does); values masked."""
    from sops_deploy import envfile
    from sops_deploy.deploy import rollout
    from sops_deploy.errors import Problem
    from sops_deploy.plan import schema

    if settings.format == "raw":
        raise UsageError("--format raw has no keys to sync", "use a dotenv, yaml or json file")
    from sops_deploy.plan import publicity

    decrypted = rollout.decrypt_all(settings, sops_bin)
    public = publicity.load(
        ((enc.path, enc.stored_format) for enc, _ in decrypted),
        settings.schema,
        settings.public_keys,
    )
    problems: list[Problem] = []
    layers = []
    for enc, plaintext in decrypted:
        entries, found = rollout.parse_plaintext(enc, plaintext, settings.interpolate)
        public = public.demoted(entries)  # a value expanded from a secret is one
        reporter.mask(rollout.secret_texts(entries, public))
        problems += found + envfile.lint(entries)
        layers.append(entries)
    merged = envfile.merge(layers)
    problems = schema.drop_covered_warnings(problems + schema.check(merged, settings))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ValidationError(problems, rollout.validation_hint(decrypted, errors))
    reporter.problems(problems)
    return decrypted, merged, public


def _report(
    reporter: Reporter, mode: str, scope: Scope, ops: list[planning.Op], writes: int
) -> None:
    """The plan table (names only) on stdout, the step summary, and the action outputs."""
    rows = [("action", "kind", "name", "reason")] + [
        (op.action, op.kind, op.name, op.reason or "–") for op in ops
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    counts: dict[str, int] = {}
    for op in ops:
        counts[op.action] = counts.get(op.action, 0) + 1
    total = ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "nothing to sync"
    lines = [f"sops-deploy github-sync ({mode}): {scope.describe()}"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(f"{len(ops)} name(s): {total}; {writes} write request(s)")
    for line in lines:
        reporter.line(line)
    md = ["| action | kind | name | reason |", "|---|---|---|---|"]
    md += [
        f"| {op.action} | {op.kind} | {mdsafe.code(op.name)} | {mdsafe.text(op.reason) or '–'} |"
        for op in ops
    ]  # names come from GitHub and the state variable: inert text (mdsafe.py)
    reporter.append_summary(
        f"### sops-deploy github-sync ({mode}): {mdsafe.text(scope.describe())}\n\n"
        + "\n".join(md)
        + "\n"
    )

    def names_of(*actions: str) -> str:
        return ",".join(op.name for op in ops if op.action in actions)

    done = mode == "sync"
    reporter.set_outputs(
        {
            "changed": "true" if done and any(op.writes for op in ops) else "false",
            "added-keys": names_of("create"),
            "changed-keys": names_of("update"),
            "removed-keys": names_of("delete"),
            "report": json.dumps([vars(op) for op in ops]),
        }
    )
