"""A local release server on 127.0.0.1 with the GitHub release layout, for tool installs.

It serves real assets: the real sops binary (tools.find_sops(tool_places(os.environ))) with a
`sops-v{V}.checksums.txt` beside it, and a real age `.tar.gz` built from the `age` and
`age-keygen` on this machine, under `<owner>/<repo>/releases/download/v{V}/<asset>`.
Every request is recorded so tests can prove a cache hit downloads nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sops_deploy.inputs.environment import tool_places
from sops_deploy.sops import tools


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def age_tarball() -> bytes:
    """A real age release-shaped archive: age/age and age/age-keygen."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("age", "age-keygen"):
            path = shutil.which(name)
            assert path, f"{name} is not installed"
            tar.add(path, arcname=f"age/{name}")
    return buf.getvalue()


@dataclass
class ReleaseServer:
    """Files by URL path; `hits` lists every path requested, in order."""

    files: dict[str, bytes] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add_sops(self, version: str, data: bytes, *, listed_digest: str | None = None) -> str:
        plat = tools.current_platform()
        base = f"/getsops/sops/releases/download/v{version}"
        asset = f"sops-v{version}.{plat.os}.{plat.arch}"
        self.files[f"{base}/{asset}"] = data
        digest = listed_digest or sha256(data)
        other = "0" * 64
        self.files[f"{base}/sops-v{version}.checksums.txt"] = (
            f"{other}  sops-v{version}.windows.amd64.exe\n{digest}  {asset}\n".encode()
        )
        return sha256(data)

    def add_age(self, version: str, data: bytes) -> str:
        plat = tools.current_platform()
        path = f"/FiloSottile/age/releases/download/v{version}/age-v{version}-{plat.tag}.tar.gz"
        self.files[path] = data
        return sha256(data)

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits.append(self.path)
                body = owner.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def sops_bytes() -> bytes:
    return Path(tools.find_sops(tool_places(os.environ))).read_bytes()
