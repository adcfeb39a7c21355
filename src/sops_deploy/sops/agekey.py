"""age identities: find them in key text and derive their public recipients, locally.

Only the public half ever leaves this module. Used to tell the user which recipient their
`AGE_KEY` is when it cannot decrypt a file, without running any external tool.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from sops_deploy.errors import UsageError

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
SECRET_PREFIX = "AGE-SECRET-KEY-1"  # noqa: S105 - a format prefix, not a secret

BAD_AGE_KEY_HINT = (
    "AGE_KEY must hold the private key text that `age-keygen` wrote: a line starting with "
    "AGE-SECRET-KEY-1 (comments are fine). Did you paste the public key (age1…) instead? "
    "(see README#faq-age-key-format)"
)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= _GEN[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convertbits(data: list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc, bits, out = 0, 0, []
    maxv = (1 << tobits) - 1
    for value in data:
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad and bits:
        out.append((acc << (tobits - bits)) & maxv)
    elif not pad and (bits >= frombits or (acc << (tobits - bits)) & maxv):
        raise ValueError("invalid padding")
    return out


def bech32_decode(text: str) -> tuple[str, bytes]:
    """Decode a BIP-173 bech32 string (no length limit, as age uses it)."""
    lower = text.lower()
    if lower != text and text.upper() != text:
        raise ValueError("mixed case")
    pos = lower.rfind("1")
    if pos < 1 or pos + 7 > len(lower):
        raise ValueError("no separator")
    hrp, data_part = lower[:pos], lower[pos + 1 :]
    if any(c not in _CHARSET for c in data_part):
        raise ValueError("invalid character")
    data = [_CHARSET.index(c) for c in data_part]
    if _polymod(_hrp_expand(hrp) + data) != 1:
        raise ValueError("bad checksum")
    return hrp, bytes(_convertbits(data[:-6], 5, 8, pad=False))


def bech32_encode(hrp: str, payload: bytes) -> str:
    data = _convertbits(list(payload), 8, 5, pad=True)
    poly = _polymod([*_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data + checksum)


def identities(key_text: str) -> list[str]:
    """The AGE-SECRET-KEY lines in a key text (comments and blank lines ignored)."""
    return [
        line.strip()
        for line in key_text.splitlines()
        if line.strip().upper().startswith(SECRET_PREFIX)
    ]


def public_key(identity: str) -> str:
    """The age1… recipient of one AGE-SECRET-KEY-1… identity."""
    try:
        hrp, secret = bech32_decode(identity.strip())
    except ValueError as exc:
        raise UsageError(
            f"AGE_KEY holds a malformed age identity ({exc})", BAD_AGE_KEY_HINT
        ) from None
    if hrp != "age-secret-key-" or len(secret) != 32:
        raise UsageError(
            "AGE_KEY holds something that is not an age X25519 identity", BAD_AGE_KEY_HINT
        )
    raw = X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()
    return bech32_encode("age", raw)


def recipients_of(key_text: str) -> list[str]:
    """Public recipients of every identity in `key_text`; an error if there is none."""
    found = identities(key_text)
    if not found:
        looks_public = "age1" in key_text
        raise UsageError(
            "AGE_KEY contains no age identity (no line starting with AGE-SECRET-KEY-1)"
            + ("; it looks like a public key was pasted" if looks_public else ""),
            BAD_AGE_KEY_HINT,
        )
    return [public_key(identity) for identity in found]


def generate() -> tuple[str, str]:
    """A new age X25519 identity: (AGE-SECRET-KEY-1… line, its age1… recipient).

    The same key `age-keygen` makes: 32 random bytes, bech32 with the upper-cased
    `AGE-SECRET-KEY-` prefix.
    """
    private = X25519PrivateKey.generate()
    identity = bech32_encode("age-secret-key-", private.private_bytes_raw()).upper()
    return identity, public_key(identity)


def check_recipient(text: str) -> str:
    """`text` if it is a well-formed age1… X25519 recipient, or an SSH public key sops
    accepts as one (`ssh-ed25519 AAAA…`, comment dropped), else a UsageError."""
    recipient = text.strip()
    if recipient.startswith(("ssh-", "ecdsa-", "sk-")):
        from sops_deploy.sops import sshage

        return sshage.normalize(recipient)
    if recipient.upper().startswith(SECRET_PREFIX):
        raise UsageError(
            "that is a private key (AGE-SECRET-KEY-1…), not a recipient; it was not stored",
            "pass the public key that `age-keygen -y key.txt` prints (age1…)",
        )
    try:
        hrp, raw = bech32_decode(recipient)
    except ValueError as exc:
        raise UsageError(
            f"{recipient[:16]!r}… is not an age recipient ({exc})",
            "pass the public key that `age-keygen -y key.txt` prints (age1…), or an SSH "
            "public key line (ssh-ed25519 AAAA…); never the private AGE-SECRET-KEY-1… line",
        ) from None
    if hrp != "age" or len(raw) != 32:
        raise UsageError(
            f"{recipient[:16]}… is not an age X25519 recipient",
            "pass the public key that `age-keygen -y key.txt` prints (age1…)",
        )
    return recipient
