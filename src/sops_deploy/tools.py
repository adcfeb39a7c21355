"""Find or install the sops binary (and age, for maintainers), pinned and cached.

Sources: `system` (what is on PATH, at least a minimum version) and `go` (`go install`
of a pinned version). Installs land in a user cache directory,
`$RUNNER_TOOL_CACHE/sops-deploy/<tool>/<version>/<os>-<arch>` on runners, otherwise
`$XDG_CACHE_HOME/sops-deploy/...` (default `~/.cache/sops-deploy/...`), so the next run
finds them and does nothing.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sops_deploy.errors import ToolError

DEFAULT_SOPS_VERSION = "3.13.2"
MIN_SOPS_VERSION = (3, 9, 0)
GO_PACKAGES = {"sops": "github.com/getsops/sops/v3/cmd/sops"}
SOURCES = ("auto", "system", "go")


@dataclass(frozen=True)
class Platform:
    os: str
    arch: str

    @property
    def tag(self) -> str:
        return f"{self.os}-{self.arch}"


def current_platform() -> Platform:
    system = platform.system().lower()
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if system not in ("linux", "darwin") or arch is None:
        raise ToolError(
            f"unsupported platform {system}/{machine}",
            "sops-deploy runs on Linux and macOS, amd64 or arm64",
        )
    return Platform(system, arch)


def cache_root() -> Path:
    runner = os.environ.get("RUNNER_TOOL_CACHE")
    if runner:
        return Path(runner) / "sops-deploy"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "sops-deploy"


def cached_path(tool: str, version: str, plat: Platform | None = None) -> Path:
    plat = plat or current_platform()
    return cache_root() / tool / version / plat.tag / tool


def version_of(binary: str) -> tuple[int, ...] | None:
    try:
        proc = subprocess.run(
            [binary, "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**os.environ, "SOPS_DISABLE_VERSION_CHECK": "1"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", proc.stdout + proc.stderr)
    return tuple(int(x) for x in m.groups()) if m else None


def find_sops(version: str = DEFAULT_SOPS_VERSION) -> str:
    """The sops to run: `$SOPS_DEPLOY_SOPS`, then the cached pinned build, then PATH."""
    explicit = os.environ.get("SOPS_DEPLOY_SOPS")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise ToolError(
                f"SOPS_DEPLOY_SOPS={explicit} is not an executable",
                "point it at a sops binary or unset it",
            )
        return explicit
    cached = cached_path("sops", version)
    if cached.is_file():
        return str(cached)
    on_path = shutil.which("sops")
    if on_path:
        found = version_of(on_path)
        if found is None or found < MIN_SOPS_VERSION:
            raise ToolError(
                f"sops on PATH ({on_path}) is version {_fmt(found)}; need "
                f"{_fmt(MIN_SOPS_VERSION)} or newer",
                "run `sops-deploy tools install` to install a pinned sops",
            )
        return on_path
    raise ToolError(
        "sops is not installed",
        f"run `sops-deploy tools install` (installs sops {version} into "
        f"{cache_root()}), or install sops {_fmt(MIN_SOPS_VERSION)}+ on PATH",
    )


def _fmt(v: tuple[int, ...] | None) -> str:
    return ".".join(map(str, v)) if v else "unknown"


def install(tool: str, version: str, source: str) -> Path:
    """Install `tool` at `version` from `source` into the cache; a no-op when present."""
    if tool not in GO_PACKAGES:
        raise ToolError(f"unknown tool {tool!r}", f"choose one of {', '.join(GO_PACKAGES)}")
    target = cached_path(tool, version)
    if target.is_file():
        return target
    if source == "system":
        return Path(find_sops(version))
    if source in ("go", "auto"):
        return _go_install(tool, version, target)
    raise ToolError(f"unknown tools source {source!r}", f"choose one of {', '.join(SOURCES)}")


def _go_install(tool: str, version: str, target: Path) -> Path:
    go = shutil.which("go")
    if go is None:
        raise ToolError(
            f"cannot build {tool} {version}: Go is not installed",
            "install Go (https://go.dev/dl) or use another tools source",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as gobin:
        env = {**os.environ, "GOBIN": gobin, "CGO_ENABLED": "0", "GOFLAGS": "-trimpath"}
        proc = subprocess.run(
            [go, "install", f"{GO_PACKAGES[tool]}@v{version}"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=gobin,
        )
        if proc.returncode != 0:
            raise ToolError(
                f"`go install {GO_PACKAGES[tool]}@v{version}` failed: {proc.stderr.strip()[-500:]}",
                "check the version exists and the Go module proxy is reachable",
            )
        os.replace(Path(gobin) / tool, target)
    return target
