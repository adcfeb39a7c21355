"""known_hosts as OpenSSH 9 reads it: parse, decide on a server's key, order key types.

This module owns the meaning of a known_hosts text: hashed names (`|1|salt|hash`),
patterns with `*`/`?`, negation (`!pattern` excludes the whole line), `[host]:port` for
other ports, comma-separated lists, `@revoked` (that key is refused for the hosts the line
names), `@cert-authority` (ignored: we never accept host certificates), several keys per
host and type. A bad line is skipped as OpenSSH skips it and reported as a problem naming
its line; it never fails another line. It does no I/O and knows nothing about connections:
callers pass text in and get data out (`check`, `key_type_preference`).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import paramiko
from paramiko.pkey import UnknownKeyType

REVOKED = "@revoked"
CERT_AUTHORITY = "@cert-authority"
_MARKERS = (REVOKED, CERT_AUTHORITY)
_HASH_MAGIC = "|1|"
_SUBPATTERN_MAX = 1023  # OpenSSH: a longer sub-pattern makes the whole list not match
_SHA1_LEN = 20
_RSA_MIN_BITS = 1024  # OpenSSH refuses shorter RSA keys when it reads them
_FIELD = re.compile(r"([^ \t]*)[ \t]*(.*)", re.DOTALL)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")
# Key type names OpenSSH 9 reads in known_hosts (plain and certificate forms).
_PLAIN_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "ssh-dss",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "sk-ssh-ed25519@openssh.com",
    "ssh-xmss@openssh.com",
)
_OPENSSH_TYPES = frozenset(
    _PLAIN_TYPES
    + tuple(t.replace("@openssh.com", "") + "-cert-v01@openssh.com" for t in _PLAIN_TYPES)
)


class Decision(enum.Enum):
    """What OpenSSH with StrictHostKeyChecking=yes would do with the server's key."""

    ACCEPT = "accept"
    UNKNOWN = "unknown"  # no line names this host (OpenSSH: HOST_NEW)
    CHANGED = "changed"  # lines name this host, none with this key (HOST_CHANGED)
    REVOKED = "revoked"  # a @revoked line for this host holds this key (HOST_REVOKED)


@dataclass(frozen=True)
class Entry:
    """One usable known_hosts line: its number, marker, host field and key."""

    line: int
    marker: str  # "", REVOKED or CERT_AUTHORITY
    hosts: str  # the host field as written (patterns, or one |1|salt|hash)
    key_type: str
    blob: bytes  # the public key in SSH wire form

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)

    def matches(self, name: str) -> bool:
        """Whether the host field names `name` (already `[host]:port`-formed, lowercase)."""
        if self.hosts.startswith("|"):
            return _hashed_match(name, self.hosts) is True
        return match_pattern_list(name, self.hosts) == 1


@dataclass(frozen=True)
class Problem:
    """A line OpenSSH would skip, and why (never quotes the key material)."""

    line: int
    reason: str


@dataclass(frozen=True)
class KnownHosts:
    """A parsed known_hosts text: usable entries and skipped lines, with its source name."""

    source: str
    entries: tuple[Entry, ...]
    problems: tuple[Problem, ...]

    def warnings(self) -> list[str]:
        return [
            f"{self.source} line {p.line}: {p.reason}; line skipped, as OpenSSH skips it "
            "(fix or delete that line)"
            for p in self.problems
        ]

    def for_host(self, host: str, port: int) -> list[Entry]:
        name = host_name(host, port)
        return [e for e in self.entries if e.matches(name)]


@dataclass(frozen=True)
class Verdict:
    """The decision and the lines behind it (for messages that say which line to fix)."""

    decision: Decision
    lines: tuple[Entry, ...]  # the revoking line(s), the accepting line, or the host's keys


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (`ssh-keygen -lf` style)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def host_name(host: str, port: int) -> str:
    """How OpenSSH names a host in known_hosts: `host`, or `[host]:port` off port 22."""
    host = host.translate(_ASCII_LOWER)
    return host if port == 22 else f"[{host}]:{port}"


def parse(text: str, source: str = "known_hosts") -> KnownHosts:
    """Parse known_hosts text; bad lines become problems, never exceptions."""
    entries: list[Entry] = []
    problems: list[Problem] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        entry = _parse_line(raw, number)
        if isinstance(entry, Entry):
            entries.append(entry)
        elif entry is not None:
            problems.append(Problem(number, entry))
    return KnownHosts(source, tuple(entries), tuple(problems))


def _parse_line(raw: str, number: int) -> Entry | str | None:
    line = raw.lstrip(" \t")
    if not line or line[0] == "#" or line in ("\r",):
        return None
    marker = ""
    if line.startswith("@"):
        word, line = _split_field(line)
        if word not in _MARKERS:
            return "unknown marker (only @revoked and @cert-authority exist)"
        marker = word
        if line.startswith("@"):
            return "more than one marker"
    hosts, rest = _split_field(line)
    if not rest or rest.startswith("#"):
        return "no key after the host names"
    if hosts.startswith("|") and _hashed_match("", hosts) is None:
        return "malformed hashed host name (expected |1|salt|hash)"
    key_type, rest = _split_field(rest)
    blob_text, _comment = _split_field(rest)
    parsed = _parse_key(key_type, blob_text)
    if isinstance(parsed, str):
        return parsed
    return Entry(number, marker, hosts, key_type, parsed)


def _split_field(text: str) -> tuple[str, str]:
    """The first space/tab-separated field and the rest with leading blanks removed."""
    match = _FIELD.match(text)
    assert match is not None  # matches any string
    return match.group(1), match.group(2)


def _parse_key(key_type: str, blob_text: str) -> bytes | str:
    if key_type not in _OPENSSH_TYPES:
        return "unknown key type" if key_type else "no key type"
    try:
        blob = base64.b64decode(blob_text.rstrip("\r"), validate=True)
    except (binascii.Error, ValueError):
        return f"the {key_type} key is not valid base64"
    if not blob_text or _blob_type(blob) != key_type:
        return f"the {key_type} key data is damaged or of another type"
    try:
        key = paramiko.PKey.from_type_string(key_type, blob)
    except UnknownKeyType:
        return blob  # a type OpenSSH knows and Paramiko does not: kept, never negotiated
    except (paramiko.SSHException, ValueError, TypeError, IndexError, struct.error):
        return f"the {key_type} key data is damaged"
    if key_type == "ssh-rsa" and key.get_bits() < _RSA_MIN_BITS:
        return f"the ssh-rsa key has fewer than {_RSA_MIN_BITS} bits"
    return key.asbytes()


def _blob_type(blob: bytes) -> str | None:
    if len(blob) < 4:
        return None
    (length,) = struct.unpack(">I", blob[:4])
    name = blob[4 : 4 + length]
    return name.decode("ascii", "replace") if len(name) == length else None


def _hashed_match(name: str, field: str) -> bool | None:
    """HMAC-SHA1 check of `|1|salt|hash`; None when the field is malformed (a bad line)."""
    if not field.startswith(_HASH_MAGIC):
        return None
    salt_text, sep, _digest = field[len(_HASH_MAGIC) :].partition("|")
    if not sep or not salt_text or len(salt_text) > 1024:
        return None
    try:
        salt = base64.b64decode(salt_text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(salt) != _SHA1_LEN:
        return None
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    expected = (
        _HASH_MAGIC + base64.b64encode(salt).decode() + "|" + base64.b64encode(digest).decode()
    )
    return hmac.compare_digest(expected, field)


def match_pattern_list(name: str, patterns: str) -> int:
    """OpenSSH's match_pattern_list: 1 on a positive match, -1 if a `!pattern` matches
    (that line is then excluded), 0 otherwise. Patterns are lowercased, like OpenSSH."""
    got_positive = 0
    for sub in patterns.split(","):
        negated = sub.startswith("!")
        if negated:
            sub = sub[1:]
        if len(sub) >= _SUBPATTERN_MAX:
            return 0
        if _glob(sub.translate(_ASCII_LOWER)).fullmatch(name):
            if negated:
                return -1
            got_positive = 1
    return got_positive


def _glob(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def check(known: KnownHosts, host: str, port: int, key_blob: bytes) -> Verdict:
    """Decide on the server's plain host key as OpenSSH's check_host_key does: look up
    `[host]:port` (or `host` on port 22); if nothing names it there and the port is not 22,
    a line for the bare `host` with this very key is accepted too ("checking without port
    identifier"), and nothing else from that second look is (a revocation is reported)."""
    verdict = _check_name(known, host_name(host, port), key_blob)
    if verdict.decision is Decision.UNKNOWN and port != 22:
        bare = _check_name(known, host_name(host, 22), key_blob)
        if bare.decision in (Decision.ACCEPT, Decision.REVOKED):
            return bare
    return verdict


def _check_name(known: KnownHosts, name: str, key_blob: bytes) -> Verdict:
    """OpenSSH's check_key_in_hostkeys over the lines that name `name`."""
    lines = [e for e in known.entries if e.matches(name)]
    revoking = tuple(e for e in lines if e.marker == REVOKED and e.blob == key_blob)
    if revoking:
        return Verdict(Decision.REVOKED, revoking)
    plain = tuple(e for e in lines if not e.marker)
    accepting = tuple(e for e in plain if e.blob == key_blob)
    if accepting:
        return Verdict(Decision.ACCEPT, accepting[:1])
    if plain:
        return Verdict(Decision.CHANGED, plain)
    return Verdict(Decision.UNKNOWN, ())


def known_key_types(known: KnownHosts, host: str, port: int) -> list[str]:
    """The plain key types listed under this host's known_hosts name (`[host]:port` off
    port 22, as OpenSSH's order_hostkeyalgs looks them up), in file order, each once."""
    seen: list[str] = []
    for entry in known.for_host(host, port):
        if not entry.marker and entry.key_type not in seen:
            seen.append(entry.key_type)
    return seen


def key_family(algorithm: str) -> str:
    """The key type an algorithm signs with (`rsa-sha2-512` → `ssh-rsa`)."""
    return "ssh-rsa" if algorithm in _RSA_ALGORITHMS else algorithm


def key_type_preference(
    available: Sequence[str], known_types: Iterable[str] = (), refused: Iterable[str] = ()
) -> list[str]:
    """Host key algorithms to offer, in order: those whose key type is known for the host
    first (as OpenSSH's order_hostkeyalgs does), then the rest; algorithms for key types
    in `refused` (already seen and not pinned) are left out. `available` is what the SSH
    library supports, in its own order of preference, e.g. Paramiko's
    `Transport.get_security_options().key_types`."""
    known = set(known_types)
    gone = {key_family(t) for t in refused}
    usable = [a for a in available if key_family(a) not in gone]
    first = [a for a in usable if key_family(a) in known]
    return first + [a for a in usable if a not in first]
