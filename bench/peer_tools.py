"""Install the peer tools `make bench-peers` compares with, into the user cache.

Owns where each peer comes from and where it lands:
`${XDG_CACHE_HOME:-~/.cache}/sops-deploy/peers/<tool>-<version>/`, built once and reused.

- Ansible: `ansible-core` in its own venv, plus the `community.sops` collection taken from
  the `ansible` community package's wheel on PyPI (which bundles it; ansible-galaxy's own
  server is not reachable here), unpacked into a collections path.
- pyinfra: its own venv from PyPI.
- appleboy's drone-scp and drone-ssh: `go install` through the Go module proxy.

A tool that cannot be installed is returned as a `Missing` with the reason, never raised:
the peer bench prints "not available: <why>" for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

# The `ansible` community package whose wheel carries community.sops, and the
# ansible-core it requires (its METADATA says `ansible-core~=2.19.5`; 2.19 still runs on
# Python 3.11, 2.20 needs 3.12).
ANSIBLE_VERSION = "12.3.0"
ANSIBLE_CORE_SPEC = "ansible-core~=2.19.5"
PYINFRA_VERSION = "3.10.0"
DRONE_SCP = "github.com/appleboy/drone-scp@v1.8.0"
DRONE_SSH = "github.com/appleboy/drone-ssh@v1.8.1"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sops-deploy" / "peers"


@dataclass(frozen=True)
class Tool:
    """An installed peer: the executables it brings and the environment it needs."""

    name: str
    version: str
    bin: dict[str, Path]
    env: dict[str, str]


@dataclass(frozen=True)
class Missing:
    """A peer that could not be installed here, and why (one line)."""

    name: str
    why: str


def _run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload, no-any-return]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def _venv(dest: Path, packages: list[str]) -> str | None:
    """Build a venv at `dest` with `packages` once (a marker file says it is complete)."""
    if (dest / ".complete").exists():
        return None
    shutil.rmtree(dest, ignore_errors=True)
    # The venv's own interpreter is the base Python behind ours (venvs do not nest).
    base = getattr(sys, "_base_executable", sys.executable)
    made = _run([base, "-m", "venv", str(dest)])
    if made.returncode != 0:
        return f"python -m venv failed: {_last_line(made.stderr)}"
    pip = _run([str(dest / "bin" / "python"), "-m", "pip", "install", "-q", *packages])
    if pip.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        return f"pip install {' '.join(packages)} failed: {_last_line(pip.stderr)}"
    (dest / ".complete").touch()
    return None


def ansible() -> Tool | Missing:
    """ansible-core + community.sops (from the `ansible` wheel), cached."""
    root = cache_root() / f"ansible-{ANSIBLE_VERSION}"
    venv = root / "venv"
    error = _venv(venv, [ANSIBLE_CORE_SPEC])
    if error:
        return Missing("ansible", error)
    collections = root / "collections"
    sops_dir = collections / "ansible_collections" / "community" / "sops"
    if not (sops_dir / "MANIFEST.json").exists():
        with tempfile.TemporaryDirectory() as tmp:
            got = _run(
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--only-binary=:all:",
                    f"ansible=={ANSIBLE_VERSION}",
                    "-d",
                    tmp,
                ]
            )
            wheels = list(Path(tmp).glob("ansible-*.whl"))
            if got.returncode != 0 or not wheels:
                return Missing("ansible", f"pip download ansible: {_last_line(got.stderr)}")
            prefix = "ansible_collections/community/sops/"
            with zipfile.ZipFile(wheels[0]) as whl:
                members = [m for m in whl.namelist() if m.startswith(prefix)]
                staging = collections.with_name("collections.tmp")
                shutil.rmtree(staging, ignore_errors=True)
                whl.extractall(staging, members)
            shutil.rmtree(collections, ignore_errors=True)
            staging.rename(collections)
    version = _run([str(venv / "bin" / "ansible-playbook"), "--version"]).stdout.split("\n")[0]
    return Tool(
        "ansible",
        f"{version.strip()} + community.sops from ansible {ANSIBLE_VERSION}",
        {"ansible-playbook": venv / "bin" / "ansible-playbook"},
        {"ANSIBLE_COLLECTIONS_PATH": str(collections)},
    )


def pyinfra() -> Tool | Missing:
    venv = cache_root() / f"pyinfra-{PYINFRA_VERSION}"
    error = _venv(venv, [f"pyinfra=={PYINFRA_VERSION}"])
    if error:
        return Missing("pyinfra", error)
    return Tool("pyinfra", PYINFRA_VERSION, {"pyinfra": venv / "bin" / "pyinfra"}, {})


def go_tool(module: str) -> Tool | Missing:
    """A Go command built with `go install` into the cache (CGO off: a static binary)."""
    path, _, version = module.partition("@")
    name = path.rsplit("/", 1)[-1]
    dest = cache_root() / f"{name}-{version}"
    binary = dest / name
    if not binary.exists():
        go = shutil.which("go")
        if go is None:
            return Missing(name, "no `go` command on PATH")
        env = {**os.environ, "GOBIN": str(dest), "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
        built = _run([go, "install", module], env=env, cwd=tempfile.gettempdir())
        if built.returncode != 0:
            if "403 Forbidden" in built.stderr:
                return Missing(name, f"the Go module proxy refuses {module} (403 Forbidden)")
            return Missing(name, f"`go install {module}` failed: {_last_line(built.stderr)}")
    return Tool(name, version, {name: binary}, {})


def install_all() -> dict[str, Tool | Missing]:
    """Every peer, installed (or found in the cache) or missing with the reason."""
    return {
        "ansible": ansible(),
        "pyinfra": pyinfra(),
        "drone-scp": go_tool(DRONE_SCP),
        "drone-ssh": go_tool(DRONE_SSH),
    }


if __name__ == "__main__":
    for tool in install_all().values():
        if isinstance(tool, Missing):
            print(f"{tool.name}: not available: {tool.why}")
        else:
            print(f"{tool.name}: {tool.version}")
