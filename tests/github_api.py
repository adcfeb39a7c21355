"""A local GitHub REST API for the secrets and variables endpoints: the one stand-in for
GitHub in these tests (no real GitHub can be reached from here).

It keeps GitHub's documented contract (REST API version 2022-11-28) for exactly what
`github-sync` uses, for repository (`/repos/O/R/actions`), environment
(`/repos/O/R/environments/E`) and Dependabot (`/repos/O/R/dependabot`) scopes:

- `GET …/secrets/public-key` → 200 `{key_id, key}` (a real Curve25519 key per scope);
- `GET …/secrets?per_page=&page=` → 200 `{total_count, secrets: [{name, created_at,
  updated_at}]}`, per_page default 30, max 100, with a `Link` header (next, last, …);
- `GET|PUT|DELETE …/secrets/NAME` → 200 / 404; PUT `{encrypted_value, key_id}` → 201
  created or 204 updated, 422 when key_id is wrong or the value is not a sealed box for
  the scope's key; DELETE → 204;
- `GET …/variables?per_page=&page=` (default 10, max 30) → `{total_count, variables:
  [{name, value, created_at, updated_at}]}`; `POST …/variables` → 201 (409 if it exists);
  `GET|PATCH|DELETE …/variables/NAME` → 200 / 204 / 204 (404 when absent);
- names are upper-cased as GitHub stores them; an invalid name is 422;
- a missing or wrong token is 401 `Bad credentials`; `read_only` makes every write 403
  `Resource not accessible by integration` (what the default GITHUB_TOKEN gets);
  `throttle(n, retry_after)` answers the next n requests 429 with `Retry-After`;
  `redirect(location)` answers the next request 302 with `Location: location` (`{path}`
  in it is the request's path and query), as a proxy or a hostile API base could.

With a `contract` (tests/github_contract.py: GitHub's official OpenAPI description), every
request it receives and every 2xx answer it gives is checked against GitHub's own contract;
`contract.violations` lists what the description does not allow.

Every sealed box is opened with the scope's private key, so tests assert the exact values
that arrived. `updated_at` comes from a clock that moves one second per write (GitHub's
timestamps have one-second resolution), so every write has a later time.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from nacl.public import PrivateKey, SealedBox

from tests.github_contract import Contract

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ROUTE = re.compile(
    r"^/repos/(?P<repo>[^/]+/[^/]+)/(?:(?P<kind>actions|dependabot)|environments/(?P<env>[^/]+))"
    r"/(?P<what>secrets|variables)(?:/(?P<name>[^/]+))?$"
)


@dataclass
class Item:
    value: str
    created_at: str
    updated_at: str


@dataclass
class ScopeData:
    key: PrivateKey = field(default_factory=PrivateKey.generate)
    key_id: str = "3380204578043523366"
    secrets: dict[str, Item] = field(default_factory=dict)
    variables: dict[str, Item] = field(default_factory=dict)


class GitHubApi:
    """The server: `start()`, `url`, the request `log`, and the data each scope holds."""

    def __init__(
        self,
        token: str,
        repo: str = "octo-org/app",
        environments: tuple[str, ...] = (),
        contract: Contract | None = None,
    ):
        self.token = token
        self.contract = contract  # GitHub's OpenAPI description: every request checked
        self.repo = repo
        self.environments = set(environments)
        self.scopes: dict[tuple[str, str], ScopeData] = {}
        self.log: list[tuple[str, str, int]] = []
        self.read_only = False
        self._throttle: list[float] = []
        self._redirects: list[tuple[str, int]] = []
        self.authorizations: list[str] = []  # the Authorization header of every request
        self._clock = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> GitHubApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> GitHubApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what tests look at ------------------------------------------------------------

    def scope(self, kind: str = "actions", env: str = "") -> ScopeData:
        return self.scopes.setdefault((kind, env), ScopeData())

    def secret_values(self, kind: str = "actions", env: str = "") -> dict[str, str]:
        return {n: i.value for n, i in self.scope(kind, env).secrets.items()}

    def variable_values(self, kind: str = "actions", env: str = "") -> dict[str, str]:
        return {n: i.value for n, i in self.scope(kind, env).variables.items()}

    def writes(self) -> list[tuple[str, str, int]]:
        return [entry for entry in self.log if entry[0] != "GET"]

    def throttle(self, count: int, retry_after: float) -> None:
        self._throttle = [retry_after] * count

    def redirect(self, location: str, code: int = 302) -> None:
        self._redirects.append((location, code))

    def outside_write(self, name: str, value: str, kind: str = "actions", env: str = "") -> None:
        """Someone else sets a secret (the web UI, another tool): value and updated_at change."""
        with self._lock:
            data = self.scope(kind, env)
            old = data.secrets.get(name)
            now = self._tick()
            data.secrets[name] = Item(value, old.created_at if old else now, now)

    # --- the API -----------------------------------------------------------------------

    def _tick(self) -> str:
        self._clock += dt.timedelta(seconds=1)
        return self._clock.strftime("%Y-%m-%dT%H:%M:%SZ")

    def handle(
        self, method: str, raw_path: str, headers: Any, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        parts = urllib.parse.urlsplit(raw_path)
        path, query = parts.path, urllib.parse.parse_qs(parts.query)
        self.authorizations.append(str(headers.get("Authorization", "")))
        if self._redirects:
            location, code = self._redirects.pop(0)
            return code, {"message": "Moved"}, {"Location": location.format(path=raw_path)}
        if self._throttle:
            wait = self._throttle.pop(0)
            return 429, {"message": "API rate limit exceeded"}, {"Retry-After": f"{wait:g}"}
        auth = headers.get("Authorization", "")
        if auth not in (f"Bearer {self.token}", f"token {self.token}"):
            return 401, {"message": "Bad credentials", "status": "401"}, {}
        public_key = path.endswith("/secrets/public-key")
        m = _ROUTE.match(path.removesuffix("/public-key") if public_key else path)
        if m is None or m["repo"] != self.repo:
            return 404, {"message": "Not Found", "status": "404"}, {}
        env = urllib.parse.unquote(m["env"] or "")
        kind = "environment" if m["env"] else m["kind"]
        if env and env not in self.environments:
            return 404, {"message": "Not Found", "status": "404"}, {}
        if kind == "dependabot" and m["what"] == "variables":
            return 404, {"message": "Not Found", "status": "404"}, {}
        if method != "GET" and self.read_only:
            return 403, {"message": "Resource not accessible by integration", "status": "403"}, {}
        with self._lock:
            data = self.scope(kind, env)
            if public_key:
                if method != "GET":
                    return 404, {"message": "Not Found"}, {}
                key = base64.b64encode(bytes(data.key.public_key)).decode()
                return 200, {"key_id": data.key_id, "key": key}, {}
            items = data.secrets if m["what"] == "secrets" else data.variables
            name = m["name"]
            if name is None:
                return self._collection(method, path, query, m["what"], items, body)
            return self._one(
                method, m["what"], items, urllib.parse.unquote(name).upper(), body, data
            )

    def _collection(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        what: str,
        items: dict[str, Item],
        body: bytes,
    ) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and what == "variables":
            doc = json.loads(body or b"{}")
            name = str(doc.get("name", "")).upper()
            if not _NAME.match(name) or "value" not in doc:
                return 422, {"message": "Invalid request.", "status": "422"}, {}
            if name in items:
                return 409, {"message": "Already exists", "status": "409"}, {}
            now = self._tick()
            items[name] = Item(str(doc["value"]), now, now)
            return 201, {}, {}
        if method != "GET":
            return 404, {"message": "Not Found"}, {}
        default, most = (30, 100) if what == "secrets" else (10, 30)
        per_page = min(int(query.get("per_page", [default])[0]), most)
        page = int(query.get("page", ["1"])[0])
        names = sorted(items)
        chunk = names[(page - 1) * per_page : page * per_page]
        last = max(1, -(-len(names) // per_page))
        rows = [
            {"name": n, "created_at": items[n].created_at, "updated_at": items[n].updated_at}
            | ({"value": items[n].value} if what == "variables" else {})
            for n in chunk
        ]
        links = []

        def link(p: int, rel: str) -> str:
            return f'<{self.url}{path}?per_page={per_page}&page={p}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        headers = {"Link": ", ".join(links)} if links else {}
        return 200, {"total_count": len(names), what: rows}, headers

    def _one(
        self,
        method: str,
        what: str,
        items: dict[str, Item],
        name: str,
        body: bytes,
        data: ScopeData,
    ) -> tuple[int, Any, dict[str, str]]:
        if not _NAME.match(name) or name.startswith("GITHUB_"):
            return 422, {"message": f"Invalid name {name}", "status": "422"}, {}
        item = items.get(name)
        if method == "GET":
            if item is None:
                return 404, {"message": "Not Found", "status": "404"}, {}
            row = {"name": name, "created_at": item.created_at, "updated_at": item.updated_at}
            return 200, row | ({"value": item.value} if what == "variables" else {}), {}
        if method == "DELETE":
            if item is None:
                return 404, {"message": "Not Found", "status": "404"}, {}
            del items[name]
            return 204, None, {}
        doc = json.loads(body or b"{}")
        if method == "PUT" and what == "secrets":
            if doc.get("key_id") != data.key_id:
                return 422, {"message": 'Invalid request.\n\n"key_id" is wrong.'}, {}
            try:
                sealed = base64.b64decode(doc["encrypted_value"], validate=True)
                value = SealedBox(data.key).decrypt(sealed).decode("utf-8")
            except Exception:
                return 422, {"message": "Invalid request.", "status": "422"}, {}
            now = self._tick()
            items[name] = Item(value, item.created_at if item else now, now)
            return (201, {}, {}) if item is None else (204, None, {})
        if method == "PATCH" and what == "variables":
            if item is None:
                return 404, {"message": "Not Found", "status": "404"}, {}
            new_name = str(doc.get("name", name)).upper()
            item = Item(str(doc.get("value", item.value)), item.created_at, self._tick())
            del items[name]
            items[new_name] = item
            return 204, None, {}
        return 404, {"message": "Not Found"}, {}


def _handler(api: GitHubApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, doc, headers = api.handle(self.command, self.path, self.headers, body)
            api.log.append((self.command, self.path, status))
            if api.contract is not None and status not in (401, 429):
                parts = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
                with api._lock:
                    api.contract.check(self.command, parts.path, query, body, status, doc)
            payload = b"" if doc is None else json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
            for k, v in headers.items():
                self.send_header(k, v)
            if payload:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return Handler
