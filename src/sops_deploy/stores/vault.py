"""One KV v2 secret of Vault or OpenBao, over Vault's HTTP API (no client library).

KV v2 needs five requests — the mount of a path (`sys/internal/ui/mounts`, what the vault
CLI asks too), `metadata` and `data` read and written — so plain `urllib` does it, with
one timeout on every request and errors that name the address and path but never the
token (hvac would add requests and urllib3 to the install for no behaviour we need).
Writes use check-and-set (`cas`), so an edit made between read and write is not lost
silently: the sync fails and says to run again.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from sops_deploy import defaults
from sops_deploy.errors import StoreError, UsageError
from sops_deploy.stores.model import MANAGED_BY, MANAGER, SOURCE, Current

REFUSED_HINT = (
    "set VAULT_TOKEN to a valid token (`bao login` / `vault login`, or the auth method of "
    "your CI) whose policy allows read, create and update on MOUNT/data/PATH and "
    "MOUNT/metadata/PATH"
)


@dataclass(frozen=True)
class VaultAccess:
    """Where and as whom: VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE (from the front door)."""

    addr: str
    token: str = field(repr=False)
    namespace: str = ""
    timeout: float = defaults.TIMEOUT


def access(environ: dict[str, str] | Any, timeout: float) -> VaultAccess:
    """VaultAccess from the environment `cli.main` was given; missing ones are usage errors."""
    addr = (environ.get("VAULT_ADDR") or "").strip().rstrip("/")
    token = (environ.get("VAULT_TOKEN") or "").strip()
    if not addr:
        raise UsageError(
            "no Vault address: set VAULT_ADDR (e.g. https://vault.example.com:8200)",
            "export VAULT_ADDR in the environment (never a flag)",
        )
    if not addr.startswith(("http://", "https://")):
        raise UsageError(f"VAULT_ADDR {addr!r} is not an http(s) URL", "e.g. https://vault:8200")
    if not token:
        raise UsageError("no Vault token: set VAULT_TOKEN in the environment", REFUSED_HINT)
    namespace = (environ.get("VAULT_NAMESPACE") or "").strip()
    return VaultAccess(addr, token, namespace, timeout)


class Client:
    """JSON requests to `/v1/...` with the token; every failure a StoreError."""

    def __init__(self, access: VaultAccess) -> None:
        self.access = access
        self.writes = 0

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, JSON body); 404 is returned, every other failure raises."""
        status, answer = self.send(method, path, body)
        if status == 404 or 200 <= status < 300:
            return status, answer
        raise self.refused(method, path, status, answer)

    def send(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request: (status, JSON body); only an unreachable server raises."""
        a = self.access
        headers = {"X-Vault-Token": a.token, "X-Vault-Request": "true"}
        if a.namespace:
            headers["X-Vault-Namespace"] = a.namespace
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        url = f"{a.addr}/v1/{urllib.parse.quote(path)}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        if method != "GET":
            self.writes += 1
        try:
            with urllib.request.urlopen(req, timeout=a.timeout) as resp:  # noqa: S310
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(exc) from None
        return status, _json(raw)

    def _unreachable(self, exc: BaseException) -> StoreError:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            why = f"no answer within --timeout {self.access.timeout:g} s"
        else:
            why = getattr(reason, "strerror", None) or str(reason)
        return StoreError(
            f"cannot reach Vault at {self.access.addr}: {why}",
            "check VAULT_ADDR and that the server is up and reachable from here "
            "(raise --timeout for a slow network)",
        )

    def refused(self, method: str, path: str, status: int, answer: Any) -> StoreError:
        errors = answer.get("errors") if isinstance(answer, dict) else None
        said = "; ".join(str(e) for e in errors)[:300] if errors else f"HTTP {status}"
        if status in (401, 403):
            if self.token_invalid():
                return StoreError(
                    f"Vault at {self.access.addr} refused the token: it is wrong or expired "
                    f"({said})",
                    REFUSED_HINT,
                )
            return StoreError(
                f"Vault at {self.access.addr} refused {method} {path}: the token's policy "
                f"does not allow it ({said})",
                REFUSED_HINT,
            )
        if status == 400 and "check-and-set" in said:
            return StoreError(
                f"{path} changed while sops-deploy was syncing it ({said})", "run the sync again"
            )
        return StoreError(f"Vault answered {method} {path} with HTTP {status}: {said}", "")

    def token_invalid(self) -> bool:
        """True when the token itself is refused (lookup-self needs no policy)."""
        status, _ = self.send("GET", "auth/token/lookup-self", None)
        return status in (401, 403)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


class VaultSecret:
    """The KV v2 secret at `MOUNT/PATH` (`secret/apps/web`)."""

    command = "vault-sync"
    adopt_hint = (
        "pass --adopt to take it over (its keys become the file's), or choose another --path"
    )

    def __init__(self, client: Client, full_path: str) -> None:
        self.client = client
        self.full_path = full_path.strip("/")
        self._mount: tuple[str, str] | None = None
        self._version = 0
        self._custom: dict[str, str] = {}

    def describe(self) -> str:
        return f"vault {self.full_path}"

    def split(self) -> tuple[str, str]:
        """(mount, path inside it), the mount asked of the server (nested mounts work)."""
        if self._mount is None:
            self._mount = self._find_mount()
        return self._mount

    def _find_mount(self) -> tuple[str, str]:
        path = f"sys/internal/ui/mounts/{self.full_path}"
        status, answer = self.client.send("GET", path)
        if status == 403 and not self.client.token_invalid():
            # Vault answers 403 both for "nothing mounted" and "not for this token"
            raise StoreError(
                f"--path {self.full_path}: Vault shows this token no secrets engine there "
                "(nothing is mounted, or the token's policy does not allow the path)",
                "name the KV v2 mount first (--path MOUNT/PATH, e.g. secret/apps/web); "
                + REFUSED_HINT,
            )
        if status != 404 and not 200 <= status < 300:
            raise self.client.refused("GET", path, status, answer)
        data = answer.get("data", {}) if isinstance(answer, dict) else {}
        mount = str(data.get("path") or "").strip("/")
        if status == 404 or not mount:
            raise UsageError(
                f"--path {self.full_path}: no secrets engine is mounted there",
                "name the KV v2 mount first: --path MOUNT/PATH, e.g. secret/apps/web",
            )
        version = str((data.get("options") or {}).get("version", "1"))
        if data.get("type") not in ("kv", "generic") or version != "2":
            raise UsageError(
                f"--path {self.full_path}: the engine at {mount}/ is not KV version 2",
                f"mount KV v2 (`bao secrets enable -path={mount} kv-v2`) or pick a KV v2 mount",
            )
        rest = self.full_path[len(mount) :].strip("/")
        if not rest:
            raise UsageError(
                f"--path {self.full_path} names the mount, not a secret in it",
                f"add the secret's path: --path {mount}/apps/web",
            )
        return mount, rest

    def read(self) -> Current:
        mount, rest = self.split()
        status, meta = self.client.request("GET", f"{mount}/metadata/{rest}")
        if status == 404:
            self._version = 0
            return Current(False)
        data = meta.get("data") or {}
        self._custom = dict(data.get("custom_metadata") or {})
        self._version = int(data.get("current_version") or 0)
        status, answer = self.client.request("GET", f"{mount}/data/{rest}")
        values: dict[str, object] = {}
        if status != 404 and isinstance(answer, dict):
            values = (answer.get("data") or {}).get("data") or {}
        owned = self._custom.get(MANAGED_BY) == MANAGER
        return Current(True, owned, values, self._custom.get(SOURCE, ""))

    def write(self, values: dict[str, str], current: Current, source: str) -> int:
        mount, rest = self.split()
        before = self.client.writes
        mark = {MANAGED_BY: MANAGER, SOURCE: source}
        if any(self._custom.get(k) != v for k, v in mark.items()):
            custom = {**self._custom, **mark}
            self.client.request("POST", f"{mount}/metadata/{rest}", {"custom_metadata": custom})
        if not current.exists or dict(current.values) != values:
            body = {"options": {"cas": self._version}, "data": values}
            self.client.request("POST", f"{mount}/data/{rest}", body)
        return self.client.writes - before
