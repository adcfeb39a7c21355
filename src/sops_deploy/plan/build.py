"""The plan: decrypt every source file (in memory), then parse, lint, check the schema
and render for each target's reader (`targets.py`) — once, all problems raised together,
before any server is touched. A `Plan` is what every host should hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sops_deploy import envfile
from sops_deploy.envfile import Entry, Secrets
from sops_deploy.errors import Problem, UsageError, ValidationError
from sops_deploy.inputs.settings import Settings, Target
from sops_deploy.plan import schema
from sops_deploy.plan.targets import TargetPlan, plan_targets
from sops_deploy.sops import runner


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


def decrypt_all(settings: Settings, sops_bin: str) -> list[tuple[runner.EncryptedFile, bytes]]:
    """Decrypt every source file (in memory), in order."""
    if not settings.files:
        raise UsageError("no encrypted file given", "pass --file secrets/.env.encrypted")
    return [
        (enc, runner.decrypt(sops_bin, enc, settings.age))
        for enc in (runner.inspect(path) for path in settings.files)
    ]


def build_plan(
    settings: Settings,
    decrypted: list[tuple[runner.EncryptedFile, bytes]],
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
        return _raw_plan(settings, decrypted)
    from sops_deploy.plan import publicity

    public = publicity.load(
        ((enc.path, enc.stored_format) for enc, _ in decrypted),
        settings.schema,
        settings.public_keys,
    )
    problems: list[Problem] = []
    layers: list[list[Entry]] = []
    for enc, plaintext in decrypted:
        entries, found = parse_plaintext(enc, plaintext)
        mask([(e.key, e.value) for e in entries if not public.is_public(e.key, e.file)])
        problems += found + envfile.lint(entries)
        layers.append(entries)
    merged = envfile.merge(layers)
    problems += schema.check(merged, settings)
    plans, found = plan_targets(settings.outputs(), merged, listed=bool(settings.targets))
    problems = schema.drop_covered_warnings(problems + found)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ValidationError(problems)
    first = plans[0]
    return Plan(merged, first.content, first.target.format, tuple(problems), tuple(plans))


def parse_plaintext(
    enc: runner.EncryptedFile, plaintext: bytes
) -> tuple[list[Entry], list[Problem]]:
    """One decrypted file as entries: dotenv text (dotenv or binary store) or a flat map."""
    text, problems = envfile.decode(plaintext, enc.path)
    if enc.stored_format in ("yaml", "json"):
        entries, found = envfile.parse_json_map(text, enc.path, envfile.key_lines(enc.path))
    else:
        entries, found = envfile.parse_dotenv(text, enc.path)
    return entries, problems + found


def _raw_plan(settings: Settings, decrypted: list[tuple[runner.EncryptedFile, bytes]]) -> Plan:
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
