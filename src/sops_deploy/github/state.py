"""The sync state: what sops-deploy wrote to a GitHub scope, kept in a variable, without values.

GitHub secrets are write-only, so drift is judged from a state the tool keeps itself, in a
repository (or environment) variable `SOPS_DEPLOY_SYNC` (`SOPS_DEPLOY_SYNC_DEPENDABOT` for
Dependabot secrets). It is JSON:

    {"v": 1, "kid": "age1…", "salt": "…", "synced_at": "2025-01-02T03:04:05Z",
     "secrets":   {"API_TOKEN": {"mac": "…", "updated_at": "…", "by": "secrets/app.env"}},
     "variables": {"PUBLIC_URL": {"by": "secrets/app.env"}}}

- `mac` is HMAC-SHA256(k, name NUL value), truncated to 128 bits, under a key
  k = HKDF-SHA256(the age identity's 32 secret bytes, salt, "sops-deploy github-sync v1"
  + the scope). Why it reveals nothing: without k, HMAC output is indistinguishable from
  random (a PRF), so unlike a plain hash it cannot be used to test guesses of a value, even
  a short one; k needs the age identity, and whoever holds that can decrypt the file
  anyway. The name is inside the MAC, so two secrets with one value get unrelated tags;
  the scope and a random salt are in k, so one value in two repositories or environments
  is not linkable either. What is visible — names, the time of the last sync, the source
  file and which age recipient (a public key, already in the encrypted file) keyed the
  tags — is what GitHub already shows or what the repository already holds.
- `updated_at` is GitHub's own timestamp of the secret, read back right after the tool
  wrote it: a later `updated_at` means someone else wrote it (no clock comparison).
- `by` is the source (files and prefix) that created the name: `--prune` deletes only
  names with the current source, so two syncs sharing a repository never prune each other.
- `seal` is HMAC-SHA256 over the whole state but `synced_at` (canonical JSON), under a key
  derived like the tags' but with its own info string (`… v1 seal`). Anyone who can write
  Variables can edit the variable; only a holder of the age identity can seal it. A state
  whose seal does not verify under the identity of this run (none: written before seals
  existed; wrong: forged or edited by hand; another `kid`) is not `proven`: its ownership
  claims are ignored — `--prune` deletes nothing on their word, and they are not carried
  into the next state (which would launder them) — only names in the file now are
  recorded again, and sealed. Migrating a state written before seals: the first run
  seals it; names that had already left the file then are named in a warning (delete them
  by hand), everything else carries on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sops_deploy.errors import UsageError
from sops_deploy.sops import agekey

VERSION = 1
MAX_BYTES = 48 * 1024  # a variable's value limit on GitHub
INFO = b"sops-deploy github-sync v1\x00"
SEAL_INFO = b"sops-deploy github-sync v1 seal\x00"


@dataclass(frozen=True)
class Owned:
    """One name the tool wrote: its tag (secrets only), GitHub's updated_at, its source."""

    by: str
    mac: str = ""
    updated_at: str = ""


@dataclass
class State:
    kid: str = ""
    salt: str = ""
    synced_at: str = ""
    secrets: dict[str, Owned] = field(default_factory=dict)
    variables: dict[str, Owned] = field(default_factory=dict)
    unreadable: bool = False  # the variable held something this version cannot read
    seal: str = ""  # as read; `render` writes the one given
    proven: bool = False  # the seal verified under this run's identity (set by the caller)

    @classmethod
    def parse(cls, text: str | None) -> State:
        if not text:
            return cls()
        try:
            doc = json.loads(text)
            if doc.get("v") != VERSION:
                raise ValueError("version")
            return cls(
                kid=str(doc.get("kid", "")),
                salt=str(doc.get("salt", "")),
                synced_at=str(doc.get("synced_at", "")),
                secrets={str(k): _owned(v) for k, v in doc.get("secrets", {}).items()},
                variables={str(k): _owned(v) for k, v in doc.get("variables", {}).items()},
                seal=str(doc.get("seal", "")),
            )
        except (ValueError, TypeError, AttributeError):
            return cls(unreadable=True)

    def content(self) -> dict[str, Any]:
        """Everything but the sync time: equal content means nothing to write."""

        def entries(owned: dict[str, Owned]) -> dict[str, dict[str, str]]:
            return {
                name: {k: v for k, v in vars(o).items() if v} for name, o in sorted(owned.items())
            }

        return {
            "v": VERSION,
            "kid": self.kid,
            "salt": self.salt,
            "secrets": entries(self.secrets),
            "variables": entries(self.variables),
        }

    def canonical(self) -> bytes:
        """The bytes the seal covers: the content, keys sorted, no spaces."""
        return json.dumps(self.content(), sort_keys=True, separators=(",", ":")).encode()

    def render(self, seal: str) -> str:
        doc = {**self.content(), "synced_at": self.synced_at, "seal": seal}
        text = json.dumps(doc, separators=(",", ":"))
        if len(text.encode()) > MAX_BYTES:
            raise UsageError(
                f"the sync state for {len(self.secrets) + len(self.variables)} names exceeds "
                "GitHub's 48 KB variable limit",
                "sync fewer keys per scope (--keys), or split the file across environments",
            )
        return text


def _owned(doc: Any) -> Owned:
    return Owned(str(doc["by"]), str(doc.get("mac", "")), str(doc.get("updated_at", "")))


def new_salt() -> str:
    return base64.b64encode(os.urandom(16)).decode()


class Tagger:
    """Keyed tags of (name, value) under a key only the age identity can derive."""

    def __init__(self, identity: str, salt: str, scope_id: str) -> None:
        self.kid = agekey.public_key(identity)
        _, secret = agekey.bech32_decode(identity.strip())
        self._key = HKDF(
            algorithm=SHA256(),
            length=32,
            salt=base64.b64decode(salt),
            info=INFO + scope_id.encode(),
        ).derive(secret)
        self._seal_key = HKDF(
            algorithm=SHA256(),
            length=32,
            salt=base64.b64decode(salt),
            info=SEAL_INFO + scope_id.encode(),
        ).derive(secret)

    def __repr__(self) -> str:
        return f"Tagger({self.kid})"

    def tag(self, name: str, value: str) -> str:
        digest = hmac.new(self._key, name.encode() + b"\x00" + value.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()[:16]).decode().rstrip("=")

    def seal(self, state: State) -> str:
        """The seal of `state`'s content (its ownership claims included)."""
        digest = hmac.new(self._seal_key, state.canonical(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def verify(self, state: State) -> bool:
        """Whether `state` was sealed by a holder of this identity (same kid and salt)."""
        if not state.seal or state.unreadable or state.kid != self.kid:
            return False
        return hmac.compare_digest(self.seal(state), state.seal)


def pick_identity(key_text: str | None, recipients: tuple[str, ...]) -> str:
    """The identity that keys the tags: the one (of those given) that the file names first
    in sorted recipient order, so every holder of that key derives the same tags."""
    found = agekey.identities(key_text or "")
    if not found:
        raise UsageError(
            "github-sync needs the age identity itself (AGE_KEY, SOPS_AGE_KEY, "
            "SOPS_AGE_KEY_FILE or --age-key-file) to key its drift state",
            "pass the age key through one of those; SOPS_AGE_KEY_CMD alone is not enough",
        )
    by_recipient = {agekey.public_key(i): i for i in found}
    for recipient in sorted(recipients):
        if recipient in by_recipient:
            return by_recipient[recipient]
    return found[0]
