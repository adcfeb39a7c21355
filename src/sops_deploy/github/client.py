"""The GitHub REST wire: authenticated requests, pagination, and errors that say what to fix.

Standard-library urllib only: six endpoints of JSON over HTTPS need no HTTP library,
and the action's hash-locked requirements stay as they are. The token goes in the
`Authorization` header and nowhere else: it is never logged, never put in an error, and
never sent to an origin other than the API base: a `Link: rel="next"` elsewhere is
refused, and so is an HTTP redirect to another origin (scheme, host and port) — urllib
would resend the `Authorization` header there. A redirect within the API's origin (GitHub's
301 for a renamed repository) is followed. Plain `http://` is accepted only for a loopback
API base (tests).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sops_deploy import __version__
from sops_deploy.errors import GitHubError, UsageError

DEFAULT_API = "https://api.github.com"
API_VERSION = "2022-11-28"
MAX_RETRY_WAIT = 60.0  # seconds: a longer Retry-After is reported, not slept through
RETRIES = 2

# The fix for token errors (text, not a password).
TOKEN_FIX = (
    "the default GITHUB_TOKEN of a workflow cannot write secrets or variables: create a "  # noqa: S105
    "fine-grained personal access token (or a GitHub App) with the repository permissions "
    "{perms} (read and write), store it as the secret SYNC_TOKEN, and pass it to the step: "
    "`env: {{GH_TOKEN: ${{{{ secrets.SYNC_TOKEN }}}}}}` — or mint one per run with "
    "actions/create-github-app-token (see README#sync-github-secrets)"
)
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Scope:
    """Where secrets go: the repository (`actions`), one environment, or Dependabot."""

    repo: str
    kind: str = "actions"  # actions | environment | dependabot
    environment: str | None = None

    @property
    def _base(self) -> str:
        if self.kind == "environment":
            assert self.environment is not None
            return f"/repos/{self.repo}/environments/{urllib.parse.quote(self.environment, '')}"
        return f"/repos/{self.repo}/{'dependabot' if self.kind == 'dependabot' else 'actions'}"

    @property
    def secrets_path(self) -> str:
        return f"{self._base}/secrets"

    @property
    def variables_path(self) -> str | None:
        """Dependabot has no variables: every key is a Dependabot secret there."""
        return None if self.kind == "dependabot" else f"{self._base}/variables"

    def describe(self) -> str:
        if self.kind == "environment":
            return f"{self.repo} environment {self.environment}"
        return f"{self.repo} {'Dependabot' if self.kind == 'dependabot' else 'Actions'}"

    @property
    def permissions(self) -> str:
        if self.kind == "dependabot":
            return '"Dependabot secrets" and "Variables"'
        if self.kind == "environment":
            return '"Environments", "Secrets" and "Variables"'
        return '"Secrets" and "Variables"'


@dataclass(frozen=True)
class Remote:
    """One secret or variable as GitHub lists it. `value` is None for a secret."""

    name: str
    updated_at: str
    value: str | None = None


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port made explicit."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), port or default


def _shown(url: str) -> str:
    """The origin of `url` for a message (never its path or query)."""
    scheme, host, port = origin(url)
    return f"{scheme}://{host}:{port}" if host else "(no host)"


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only within the API base's origin; anything else is refused."""

    def __init__(self, api: str) -> None:
        self.api = api

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if origin(newurl) != origin(self.api):
            fp.close()
            raise GitHubError(
                f"the GitHub API at {self.api} answered {code} redirecting to another origin "
                f"({_shown(newurl)}); refused, the token is sent only to the API base",
                "check GITHUB_API_URL: set it to the address the API answers at itself "
                "(GitHub Enterprise: https://HOST/api/v3)",
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def check_api_base(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(
            f"GITHUB_API_URL {url!r} is not an http(s) URL",
            f"unset it for github.com ({DEFAULT_API}), or use https://HOST/api/v3 for "
            "GitHub Enterprise Server",
        )
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise UsageError(
            f"GITHUB_API_URL {url!r} is plain http: the token would cross the network unencrypted",
            "use the https:// address of the API",
        )
    return url.rstrip("/")


class Client:
    """Authenticated JSON requests to one GitHub API base."""

    def __init__(
        self,
        token: str,
        api: str = DEFAULT_API,
        *,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        perms: str = '"Secrets" and "Variables"',
    ) -> None:
        self.api = check_api_base(api)
        self.perms = perms  # the fine-grained permissions to name in a 401/403 fix
        self._token = token
        self.timeout = timeout
        self.sleep = sleep
        self.writes = 0  # PUT/POST/PATCH/DELETE requests that succeeded
        self._opener = urllib.request.build_opener(_SameOriginRedirects(self.api))

    def __repr__(self) -> str:  # never the token
        return f"Client({self.api!r})"

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, what: str
    ) -> tuple[int, Any, dict[str, str]]:
        """One request (retried on 429 / rate-limit 403 within Retry-After); errors raised."""
        url = path if path.startswith(self.api + "/") else self.api + path
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(RETRIES + 1):
            req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (scheme checked)
            req.add_header("Accept", "application/vnd.github+json")
            req.add_header("Authorization", f"Bearer {self._token}")
            req.add_header("X-GitHub-Api-Version", API_VERSION)
            req.add_header("User-Agent", f"sops-deploy/{__version__}")
            if data is not None:
                req.add_header("Content-Type", "application/json")
            try:
                with self._opener.open(req, timeout=self.timeout) as resp:
                    status, raw, headers = resp.status, resp.read(), dict(resp.headers)
            except urllib.error.HTTPError as exc:
                status, raw, headers = exc.code, exc.read(), dict(exc.headers)
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise GitHubError(
                    f"cannot reach the GitHub API at {self.api} ({reason}) while trying to {what}",
                    "check the network and GITHUB_API_URL (GitHub Enterprise: https://HOST/api/v3)",
                ) from None
            wait = _rate_limit_wait(status, headers)
            if wait is not None and attempt < RETRIES and wait <= MAX_RETRY_WAIT:
                self.sleep(wait)
                continue
            if status >= 400:
                raise self._error(status, raw, headers, what, wait)
            if method != "GET":
                self.writes += 1
            return status, _json(raw), headers
        raise AssertionError("unreachable")  # pragma: no cover

    def paginate(self, path: str, field: str, *, per_page: int, what: str) -> Iterator[Any]:
        """Every item of a list endpoint, following `Link: <…>; rel="next"`."""
        url: str | None = f"{path}?per_page={per_page}"
        while url is not None:
            _, body, headers = self.request("GET", url, what=what)
            items = body.get(field) if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise GitHubError(
                    f"GitHub answered {what} without a `{field}` list",
                    "check that GITHUB_API_URL points at the REST API (…/api/v3 on Enterprise)",
                )
            yield from items
            url = self._next(headers)

    def _next(self, headers: dict[str, str]) -> str | None:
        link = next((v for k, v in headers.items() if k.lower() == "link"), "")
        m = _NEXT.search(link)
        if not m:
            return None
        nxt = m.group(1)
        if origin(nxt) != origin(self.api):
            raise GitHubError(
                f"GitHub's next-page link leaves the API host {self.api}; refused",
                "check GITHUB_API_URL",
            )
        return nxt

    def _error(
        self, status: int, raw: bytes, headers: dict[str, str], what: str, wait: float | None
    ) -> GitHubError:
        message = str((_json(raw) or {}).get("message", "")).splitlines()[0:1]
        said = f" (GitHub: {message[0][:200]})" if message and message[0] else ""
        if wait is not None:
            return GitHubError(
                f"GitHub rate limit while trying to {what}: retry after {wait:.0f}s{said}",
                "wait and rerun; for many secrets use a GitHub App token (higher limits), "
                "and avoid syncing from many jobs at once",
            )
        if status == 401:
            return GitHubError(
                f"GitHub rejected the token (401) while trying to {what}{said}",
                "set GITHUB_TOKEN or GH_TOKEN to a valid, unexpired token with the repository "
                f"permissions {self.perms} (read and write)",
            )
        if status == 403:
            return GitHubError(
                f"the token may not {what} (403){said}",
                "give the token the missing permission (classic tokens: the `repo` scope); "
                + TOKEN_FIX.format(perms=self.perms),
            )
        if status == 404:
            return GitHubError(
                f"not found (404) while trying to {what}{said}",
                "check --repo OWNER/REPO and --github-environment (it must exist: Settings → "
                "Environments); a token that cannot see a private repository also gets 404",
            )
        if status == 422:
            return GitHubError(
                f"GitHub refused the request (422) to {what}{said}",
                "check the secret names and sizes (48 KB per secret); rerun, since a rotated "
                "public key is fetched again on every run",
            )
        return GitHubError(
            f"GitHub answered {status} while trying to {what}{said}",
            "retry later; see https://www.githubstatus.com if it persists",
        )


def _json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _rate_limit_wait(status: int, headers: dict[str, str]) -> float | None:
    """Seconds to wait for a rate limit (429, or 403 with no remaining quota), else None."""
    low = {k.lower(): v for k, v in headers.items()}
    limited = status == 429 or (status == 403 and low.get("x-ratelimit-remaining") == "0")
    if not limited:
        return None
    try:
        return max(0.0, float(low.get("retry-after", "")))
    except ValueError:
        pass
    try:
        return max(0.0, float(low.get("x-ratelimit-reset", "")) - time.time())
    except ValueError:
        return 60.0


class Api:
    """The secrets and variables endpoints of one scope."""

    def __init__(self, client: Client, scope: Scope) -> None:
        self.client = client
        self.scope = scope

    def public_key(self) -> tuple[str, str]:
        """(key_id, base64 key) that secret values of this scope are sealed to."""
        _, body, _ = self.client.request(
            "GET",
            f"{self.scope.secrets_path}/public-key",
            what=f"read the secrets public key of {self.scope.describe()}",
        )
        if not isinstance(body, dict) or not body.get("key_id") or not body.get("key"):
            raise GitHubError(
                f"GitHub sent no public key for {self.scope.describe()}",
                "check GITHUB_API_URL and the token",
            )
        return str(body["key_id"]), str(body["key"])

    def secrets(self) -> dict[str, Remote]:
        items = self.client.paginate(
            self.scope.secrets_path,
            "secrets",
            per_page=100,
            what=f"list the secrets of {self.scope.describe()}",
        )
        return {str(i["name"]): Remote(str(i["name"]), str(i.get("updated_at", ""))) for i in items}

    def put_secret(self, name: str, encrypted_value: str, key_id: str) -> str:
        """Create (201) or update (204) one secret; returns "created" or "updated"."""
        status, _, _ = self.client.request(
            "PUT",
            f"{self.scope.secrets_path}/{name}",
            {"encrypted_value": encrypted_value, "key_id": key_id},
            what=f"write the secret {name} of {self.scope.describe()}",
        )
        return "created" if status == 201 else "updated"

    def delete_secret(self, name: str) -> None:
        self.client.request(
            "DELETE",
            f"{self.scope.secrets_path}/{name}",
            what=f"delete the secret {name} of {self.scope.describe()}",
        )

    def variables(self, path: str | None = None) -> dict[str, Remote]:
        path = path or self.scope.variables_path
        if path is None:
            return {}
        items = self.client.paginate(
            path, "variables", per_page=30, what=f"list the variables of {self.scope.describe()}"
        )
        return {
            str(i["name"]): Remote(str(i["name"]), str(i.get("updated_at", "")), str(i["value"]))
            for i in items
        }

    def set_variable(self, name: str, value: str, *, exists: bool, path: str | None = None) -> None:
        """Create (POST, 201) or update (PATCH, 204) one variable."""
        base = path or self.scope.variables_path
        assert base is not None
        what = f"write the variable {name} of {self.scope.describe()}"
        if exists:
            self.client.request(
                "PATCH", f"{base}/{name}", {"name": name, "value": value}, what=what
            )
        else:
            self.client.request("POST", base, {"name": name, "value": value}, what=what)

    def delete_variable(self, name: str, path: str | None = None) -> None:
        base = path or self.scope.variables_path
        assert base is not None
        self.client.request(
            "DELETE",
            f"{base}/{name}",
            what=f"delete the variable {name} of {self.scope.describe()}",
        )
