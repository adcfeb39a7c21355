"""The libsodium sealed box GitHub requires for a secret value (PyNaCl).

A sealed box encrypts to the scope's Curve25519 public key with a fresh ephemeral key,
so only GitHub can open it; the result is base64 as the API expects `encrypted_value`.
"""

from __future__ import annotations

import base64
import binascii

from nacl.exceptions import CryptoError
from nacl.public import PublicKey, SealedBox

from sops_deploy.errors import GitHubError


def seal(public_key_b64: str, value: str) -> str:
    """`value` (UTF-8) sealed to the base64 `public_key_b64`, as base64 text."""
    try:
        key = PublicKey(base64.b64decode(public_key_b64, validate=True))
    except (binascii.Error, ValueError, CryptoError):
        raise GitHubError(
            "GitHub sent a secrets public key that is not a base64 Curve25519 key",
            "check GITHUB_API_URL; rerun to fetch the key again",
        ) from None
    return base64.b64encode(SealedBox(key).encrypt(value.encode("utf-8"))).decode("ascii")
