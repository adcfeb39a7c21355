"""The plan: decrypt every source file (in memory), then parse, lint, check the schema
and render for the target's reader — all problems raised together, before any server is
touched. A `Plan` is what every host should hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sops_deploy import envfile, schema, sops
from sops_deploy.config import Settings
from sops_deploy.envfile import Entry, Secrets
from sops_deploy.errors import Problem, UsageError, ValidationError


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
