"""For `doctor`: can this environment use each non-age master key of a file?

One line per key: its credentials are present (`keygroups.missing`), its server answers
within `--timeout` (a TCP connection — or, for Vault/OpenBao, `GET /v1/sys/health`, which
needs no token), and for PGP the secret key is in the keyring sops would use. Whether the
credentials are accepted is shown by the decrypt check that follows. No credential is sent
anywhere here.
"""

from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from sops_deploy.sops import keygroups, nokey
from sops_deploy.sops.keygroups import AGE, AWS, AZURE, GCP, PGP, VAULT, MasterKey


@dataclass(frozen=True)
class Access:
    """Whether one master key is usable here, and if not, why and the fix."""

    key: MasterKey
    ok: bool
    detail: str
    fix: str = ""


def check(
    groups: tuple[tuple[MasterKey, ...], ...],
    env: Mapping[str, str],
    interface: str,
    timeout: float,
) -> Iterator[Access]:
    """One `Access` per non-age master key, in the file's order."""
    home = Path(env["HOME"]) if env.get("HOME") else None
    for group in groups:
        for key in group:
            if key.kind == AGE:
                continue
            fix = nokey.fix_for(key.kind, interface, groups)
            lacking = keygroups.missing(key.kind, env, home)
            if lacking is not None:
                yield Access(key, False, lacking, fix)
                continue
            if key.kind == PGP:
                yield _pgp(key, env, timeout, fix)
                continue
            where = _endpoint(key, env)
            problem = _reach(where, timeout, vault=key.kind == VAULT)
            if problem is None:
                yield Access(key, True, f"credentials present, {where} answers")
            else:
                yield Access(key, False, f"credentials present, but {where}: {problem}", fix)


def _endpoint(key: MasterKey, env: Mapping[str, str]) -> str:
    """The URL sops would talk to for `key` (an AWS endpoint variable wins)."""
    if key.kind == AWS:
        region = key.ident.split(":")[3] if key.ident.count(":") >= 5 else ""
        region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION", "us-east-1")
        return (
            env.get("AWS_ENDPOINT_URL_KMS")
            or env.get("AWS_ENDPOINT_URL")
            or f"https://kms.{region}.amazonaws.com"
        )
    if key.kind == VAULT:
        return key.ident.split("/v1/", 1)[0]
    if key.kind == GCP:
        return "https://cloudkms.googleapis.com"
    if key.kind == AZURE:
        return key.ident.split("/keys/", 1)[0]
    return key.ident


def _reach(url: str, timeout: float, *, vault: bool) -> str | None:
    """None when `url`'s server answers within `timeout`, else why not."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not host:
        return "not a URL"
    if vault:
        try:
            with urllib.request.urlopen(f"{url}/v1/sys/health", timeout=timeout):  # noqa: S310
                return None
        except urllib.error.HTTPError as exc:  # 429/472/473 standby, 501 uninitialised, 503 sealed
            return None if exc.code in (429, 472, 473) else f"health answered HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            return f"not reachable within {timeout:.0f}s ({_why(exc)})"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"not reachable within {timeout:.0f}s ({_why(exc)})"


def _why(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        exc = reason
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    return getattr(exc, "strerror", None) or type(exc).__name__


def _pgp(key: MasterKey, env: Mapping[str, str], timeout: float, fix: str) -> Access:
    gpg = env.get("SOPS_GPG_EXEC") or "gpg"
    try:
        proc = subprocess.run(
            [gpg, "--batch", "--with-colons", "--list-secret-keys", key.ident],
            env=dict(env),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        return Access(key, False, f"{gpg} not found", "install GnuPG (Debian: gnupg)")
    except subprocess.TimeoutExpired:
        return Access(key, False, f"{gpg} did not answer within {timeout:.0f}s", fix)
    home = env.get("GNUPGHOME") or "~/.gnupg"
    if proc.returncode == 0 and b"sec:" in proc.stdout:
        return Access(key, True, f"secret key in the keyring at {home}")
    return Access(key, False, f"no secret key for it in the keyring at {home}", fix)
