"""Which keys are public: their values are shown in logs and outputs rather than masked.

A key is public when
- sops stores it unencrypted in the file that defines it (`unencrypted_suffix`,
  `unencrypted_regex`, or outside `encrypted_regex`/`encrypted_suffix`): what is in clear
  text in git is no secret (`clear_keys`);
- the schema marks it public: `secret: false` in schema.yaml, a `# public` comment in a
  `.env.example`;
- sops-deploy.yaml lists it under `public-keys:` (or `--public-keys`, the action's
  `public-keys:` input).
Every other key is secret; `redact.is_maskable` then spares only booleans and values
too short to be secrets — except for a key whose name says secret (`names_a_secret`:
`DB_PASSWORD`, `SESSION_SECRET`, `pin`, `apiKey`), whose value is masked whatever its
length. `Publicity.is_public` is the one question other code asks (the
Reporter's masking, github-sync's choice between a secret and a variable).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sops_deploy.envfile import Entry

# Name parts that say "this is a secret" (README "Masking"): a short value of such a key is
# masked too. Parts are split at `_`, `-`, `.` and camelCase humps; plurals count.
SECRET_PARTS = frozenset(
    (
        "PASSWORD", "PASS", "PASSWD", "PASSPHRASE", "PIN", "TOKEN", "SECRET", "KEY",
        "PRIVATE", "CREDENTIAL", "CREDENTIALS", "PASSWORDS", "TOKENS", "SECRETS", "KEYS",
        "APIKEY", "PRIVKEY",
    )
)  # fmt: skip
_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def name_parts(key: str) -> list[str]:
    """`DB_PASSWORD` → DB, PASSWORD; `apiKey` → API, KEY; `MONKEY` → MONKEY."""
    return [part.upper() for part in _PARTS.findall(key)]


def names_a_secret(key: str | None) -> bool:
    """Whether a part of the key's name says secret (`SESSION_SECRET`, `db-pass`, `PIN`)."""
    return key is not None and any(part in SECRET_PARTS for part in name_parts(key))


@dataclass(frozen=True)
class Publicity:
    """The public keys of one run: stored in clear per file, or marked public by name."""

    clear: Mapping[str, frozenset[str]] = field(default_factory=dict)  # file -> keys
    marked: Mapping[str, str] = field(default_factory=dict)  # key -> where it is marked

    def is_public(self, key: str, file: str | None = None) -> bool:
        """Whether `key` (as defined in `file`, when known) is public.

        A key stored in clear is public only for the file that stores it so: a later file
        that overrides it encrypted makes that value a secret again.
        """
        if key in self.marked:
            return True
        return file is not None and key in self.clear.get(file, frozenset())

    def demoted(self, entries: Iterable[Entry]) -> Publicity:
        """This publicity with every key whose value was expanded from a secret key's made
        secret too (`Entry.refs`, by `--interpolate`): its value holds the secret."""
        drop = {
            (e.key, e.file)
            for e in entries
            if self.is_public(e.key, e.file) and any(not self.is_public(r, e.file) for r in e.refs)
        }
        if not drop:
            return self
        keys = {k for k, _ in drop}
        clear = {f: frozenset(k for k in ks if (k, f) not in drop) for f, ks in self.clear.items()}
        marked = {k: w for k, w in self.marked.items() if k not in keys}
        return Publicity(clear, marked)

    def why(self, key: str, file: str | None = None) -> str | None:
        """Where the key is made public, for messages; None for a secret key."""
        if key in self.marked:
            return self.marked[key]
        if file is not None and key in self.clear.get(file, frozenset()):
            return f"{file} (stored unencrypted by sops)"
        return None


def load(
    files: Iterable[tuple[str, str]], schema: str | None, public_keys: Iterable[str] = ()
) -> Publicity:
    """The publicity of a run: `files` are (path, sops stored format) pairs.

    The schema is read only for its public marks (a broken schema is reported by the
    schema check, with its line).
    """
    from sops_deploy.errors import UsageError
    from sops_deploy.plan import schema as schema_mod

    clear = {path: clear_keys(path, stored) for path, stored in files}
    marked: dict[str, str] = {}
    if schema:
        with contextlib.suppress(UsageError):
            marked.update(schema_mod.load(schema).public_keys())
    for key in public_keys:
        marked.setdefault(key, "public-keys of sops-deploy.yaml / --public-keys")
    return Publicity(clear, marked)


# --- keys sops stores in clear text ---------------------------------------------------------


def clear_keys(path: str, stored_format: str) -> frozenset[str]:
    """Top-level keys whose value sops stored unencrypted in `path`.

    Which keys sops leaves in clear is decided by the rules it records in the file's
    metadata (`unencrypted_suffix` — `_unencrypted` by default —, `encrypted_suffix`,
    `unencrypted_regex`, `encrypted_regex`; `mac_only_encrypted` changes only the MAC).
    Rather than re-implement those rules (and Go's regexp), this reads their outcome: a
    value not stored as an `ENC[AES256_GCM,...]` envelope is in clear text in git. A file
    that cannot be read, or a binary-format file, has no clear keys.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError:
        return frozenset()
    if stored_format == "dotenv":  # one KEY=value a line; sops's own lines start sops_
        clear = set()
        for line in raw.split(b"\n"):
            key, eq, value = line.partition(b"=")
            stored_clear = eq and not value.startswith(b"ENC[AES256_GCM,")
            if stored_clear and not key.startswith((b"sops_", b"#")):
                clear.add(key.decode("utf-8", "replace"))
        return frozenset(clear)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return frozenset()
    if stored_format not in ("yaml", "json"):
        return frozenset()
    import json

    doc: object
    try:
        doc = json.loads(text)
    except ValueError:
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            return frozenset()
    if not isinstance(doc, dict):
        return frozenset()
    return frozenset(
        str(key)
        for key, value in doc.items()
        if key != "sops"
        and not isinstance(value, (dict, list))
        and not (isinstance(value, str) and value.startswith("ENC[AES256_GCM,"))
    )
