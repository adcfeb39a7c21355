"""The plan: the decrypted files (`decrypt.py`) parsed, linted and checked against the
schema into Secrets (`read_secrets`), then rendered for each target's reader
(`targets.py`) — once, all problems raised together, before any server is touched. A
`Plan` is what every host should hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sops_deploy import envfile
from sops_deploy.envfile import Entry, Secrets
from sops_deploy.errors import Problem, UsageError, ValidationError
from sops_deploy.inputs.settings import Settings, Target
from sops_deploy.plan import schema
from sops_deploy.plan.decrypt import Decrypted
from sops_deploy.plan.readback import ReadBack
from sops_deploy.plan.targets import TargetPlan, plan_targets

if TYPE_CHECKING:
    from sops_deploy.plan.publicity import Publicity
    from sops_deploy.sops.runner import EncryptedFile


@dataclass(frozen=True)
class Plan:
    """What every host should hold: the secrets, and each target's rendering of its keys
    (`targets`; a plan made without them is one file, `content` in `format`)."""

    secrets: Secrets
    content: bytes
    format: str
    warnings: tuple[Problem, ...] = ()
    targets: tuple[TargetPlan, ...] = ()

    @property
    def expanded(self) -> tuple[str, ...]:
        """The keys whose values `--interpolate` expanded (their references resolved)."""
        return tuple(k for k, e in self.secrets.items() if e.template is not None)

    @property
    def sha256(self) -> str:
        """The file's digest; with several targets, one digest of every target's."""
        if len(self.targets) > 1:
            lines = "".join(f"{t.target.label}\0{t.sha256}\n" for t in self.targets)
            return hashlib.sha256(lines.encode()).hexdigest()
        if self.targets:
            return self.targets[0].sha256
        return hashlib.sha256(self.content).hexdigest()

    def for_targets(self, targets: tuple[Target, ...]) -> tuple[TargetPlan, ...]:
        """Each target's part (a plan made without targets serves the one target given)."""
        if self.targets:
            return self.targets
        return (TargetPlan(targets[0], self.secrets, self.content),)


@dataclass(frozen=True)
class Parsed:
    """The decrypted files as Secrets: merged in order, which keys are public, and every
    problem found (parse, lint, schema) — not yet raised."""

    secrets: Secrets
    public: Publicity
    problems: list[Problem]


def read_secrets(
    settings: Settings, decrypted: Decrypted, mask: Callable[[list[str | tuple[str, str]]], None]
) -> Parsed:
    """Parse and lint each decrypted file, merge them (later files override earlier) and
    check the schema: the one way decrypted files become Secrets (deploy, check, diff,
    validate, github-sync, doctor). `mask` receives every secret (key, value) as soon as
    it is parsed, before any problem is reported; values of public keys are not masked."""
    from sops_deploy.plan import publicity

    public = publicity.load(
        ((enc.path, enc.stored_format) for enc, _ in decrypted),
        settings.schema,
        settings.public_keys,
    )
    problems: list[Problem] = []
    layers: list[list[Entry]] = []
    for enc, plaintext in decrypted:
        entries, found = parse_plaintext(enc, plaintext, settings.interpolate)
        public = public.demoted(entries)  # a value expanded from a secret is one
        mask(secret_texts(entries, public))
        problems += found + envfile.lint(entries)
        layers.append(entries)
    merged = envfile.merge(layers)
    return Parsed(merged, public, problems + schema.check(merged, settings))


def build_plan(
    settings: Settings,
    decrypted: Decrypted,
    mask: Callable[[list[str | tuple[str, str]]], None],
) -> Plan:
    """Parse, lint, check and render the decrypted files; all problems raised together.

    `mask` receives every secret (key, value) as soon as it is parsed, before any problem
    is reported; values of public keys (`publicity.py`) are not masked.
    """
    if settings.format == "raw":
        mask(
            [  # no keys, so nothing is public
                line
                for _, plaintext in decrypted
                for line in plaintext.decode("utf-8", "replace").splitlines()
            ]
        )
        raw = _raw_plan(settings, decrypted)
        guarded = tuple(replace(t, read_back=ReadBack(mask)) for t in raw.targets)
        return replace(raw, targets=guarded)
    parsed = read_secrets(settings, decrypted, mask)
    merged = parsed.secrets
    plans, found = plan_targets(settings.outputs(), merged, listed=bool(settings.targets))
    problems = schema.drop_covered_warnings(parsed.problems + found)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ValidationError(problems, validation_hint(decrypted, errors))
    # What a server's current file holds is masked like these values when it is read.
    public = parsed.public
    read_back = ReadBack(mask, frozenset(public.marked).union(*public.clear.values()))
    plans = [replace(p, read_back=read_back) for p in plans]
    first = plans[0]
    return Plan(merged, first.content, first.target.format, tuple(problems), tuple(plans))


def parse_plaintext(
    enc: EncryptedFile, plaintext: bytes, interpolate: str = "auto"
) -> tuple[list[Entry], list[Problem]]:
    """One decrypted file as entries: dotenv text (dotenv or binary store) or a flat map.

    A dotenv text's references to its own keys are expanded by `interpolate`
    (`envfile/interpolate.py`); a yaml/json map's values are taken as they are.
    """
    text, problems = envfile.decode(plaintext, enc.path)
    if enc.stored_format in ("yaml", "json"):
        from sops_deploy.envfile import structured  # here: a dotenv source needs no json

        entries, found = structured.parse_json_map(text, enc.path, structured.key_lines(enc.path))
        return entries, problems + found
    entries, found = envfile.parse_dotenv(text, enc.path)
    entries, more, _ = envfile.expand(entries, interpolate)
    return entries, problems + found + more


def validation_hint(decrypted: Decrypted, errors: list[Problem]) -> str:
    """The fix for a failed validation, saying which text the line numbers count in.

    A dotenv-store file decrypts to one line per line of the file itself (sops writes one
    `KEY=ENC[...]` or `#ENC[...]` line per entry and keeps no blank line), so a number is a
    line of the encrypted file as it is in git, and of `sops edit`; a plaintext the file
    was encrypted from may number the same line higher. A binary-store file decrypts to
    the bytes that were encrypted, so its numbers are lines of that original text.
    """
    stores = {enc.path: enc.stored_format for enc, _ in decrypted}
    notes = []
    for path in dict.fromkeys(p.file for p in errors if p.line is not None):
        store = stores.get(path)
        if store == "dotenv":
            notes.append(
                f"line numbers in {path} are lines of that file itself (as `sops edit` shows "
                "it); sops's dotenv store keeps no blank lines, so the plaintext it was "
                "encrypted from may number them differently"
            )
        elif store == "binary":
            notes.append(
                f"line numbers in {path} are lines of its decrypted text (`sops decrypt`), "
                "the file as it was encrypted"
            )
    base = (
        "fix each problem listed above, re-encrypt, and run `sops-deploy validate` "
        "(see docs/faq.md#faq-validation-failed)"
    )
    return "; ".join([base, *notes])


def secret_texts(entries: list[Entry], public: Publicity) -> list[str | tuple[str, str]]:
    """What to mask of one file's entries: each secret's value, and the text it was
    expanded from (`Entry.template`)."""
    out: list[str | tuple[str, str]] = []
    for e in entries:
        if public.is_public(e.key, e.file):
            continue
        out.append((e.key, e.value))
        if e.template is not None:
            out.append((e.key, e.template))
    return out


def _raw_plan(settings: Settings, decrypted: Decrypted) -> Plan:
    if len(decrypted) != 1:
        raise UsageError("--format raw deploys exactly one file", "pass a single --file")
    if settings.required or settings.schema:
        raise UsageError(
            "--format raw cannot check required keys or a schema",
            "drop --required/--schema, or use a dotenv format",
        )
    if decrypted[0][0].stored_format in ("yaml", "json"):
        raise UsageError(*envfile.RAW_STRUCTURED)
    content = decrypted[0][1]
    return Plan({}, content, "raw", (), (TargetPlan(settings.outputs()[0], {}, content),))
