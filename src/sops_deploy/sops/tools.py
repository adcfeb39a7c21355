"""Find or install sops and age, pinned, verified and cached.

Sources:
- `release`: the project's published release assets, verified (see `release.py`);
  `tools-mirror` is the same layout under another base URL (GitHub Enterprise, mirrors).
- `system`: what is on PATH, at least a minimum version.
- `go`: `go install` of a pinned version.
- `auto`: `release` when the release host answers quickly, else `go`.

Installs land in the user cache directory that the front door resolved (`ToolPlaces`:
`$RUNNER_TOOL_CACHE/sops-deploy/<tool>/<version>/<os>-<arch>` on runners, otherwise
`$XDG_CACHE_HOME/sops-deploy/...`, default `~/.cache/sops-deploy/...`), so the next run
finds them and downloads nothing. Tools run with the environment `ToolPlaces` carries.
A download goes to a temporary file inside the cache, is verified, and only then renamed
into place: a mismatch installs nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from sops_deploy.errors import ToolError
from sops_deploy.inputs.settings import ToolPlaces
from sops_deploy.sops.release import (
    BINARIES,
    DOWNLOAD_TIMEOUT,
    GITHUB,
    PINNED_SHA256,
    PROBE_TIMEOUT,
    Platform,
    Release,
    Unreachable,
    is_sha256,
)

DEFAULT_SOPS_VERSION = "3.13.2"
DEFAULT_AGE_VERSION = "1.3.1"
MIN_SOPS_VERSION = (3, 9, 0)
MIN_AGE_VERSION = (1, 1, 0)
GO_PACKAGES = {
    "sops": ("github.com/getsops/sops/v3/cmd/sops",),
    "age": ("filippo.io/age/cmd/age", "filippo.io/age/cmd/age-keygen"),
}
TOOLS = tuple(BINARIES)
SOURCES = ("auto", "release", "system", "go")
_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def platform_for(system: str, machine: str) -> Platform:
    """Map an OS and machine name to a supported Platform, or say clearly that it is not."""
    system, machine = system.lower(), machine.lower()
    arch = _ARCHES.get(machine)
    if system not in ("linux", "darwin") or arch is None:
        raise ToolError(
            f"unsupported platform {system}/{machine}",
            "sops-deploy runs on Linux and macOS, amd64 or arm64",
        )
    return Platform(system, arch)


def current_platform() -> Platform:
    # os.uname() is what platform.system()/machine() read on POSIX, without importing
    # `platform` (~5 ms on every deploy and validate).
    uname = os.uname()
    return platform_for(uname.sysname, uname.machine)


def cached_path(places: ToolPlaces, tool: str, version: str, plat: Platform | None = None) -> Path:
    plat = plat or current_platform()
    return places.cache / tool / version / plat.tag / BINARIES.get(tool, (tool,))[0]


def version_of(binary: str, env: Mapping[str, str]) -> tuple[int, ...] | None:
    import subprocess

    try:
        proc = subprocess.run(
            [binary, "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**env, "SOPS_DISABLE_VERSION_CHECK": "1"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", proc.stdout + proc.stderr)
    return tuple(int(x) for x in m.groups()) if m else None


def find_sops(places: ToolPlaces, version: str = DEFAULT_SOPS_VERSION) -> str:
    """The sops to run: `$SOPS_DEPLOY_SOPS`, then the cached pinned build, then PATH."""
    explicit = places.sops
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise ToolError(
                f"SOPS_DEPLOY_SOPS={explicit} is not an executable",
                "point it at a sops binary or unset it",
            )
        return explicit
    plat = current_platform()
    cached = cached_path(places, "sops", version, plat)
    if cached.is_file():
        from sops_deploy.sops import toolcheck

        pinned = PINNED_SHA256.get(("sops", version, plat.os, plat.arch))
        why = toolcheck.problem(places, "sops", version, plat.tag, [cached], pinned)
        if why is not None:
            raise ToolError(
                f"the cached sops at {cached} is not run: {why}",
                "run `sops-deploy tools install sops` to replace it with a verified one "
                "(or set SOPS_DEPLOY_SOPS to a sops you trust)",
            )
        return str(cached)
    return _on_path(places, "sops", version)


def _on_path(places: ToolPlaces, tool: str, version: str) -> str:
    import shutil  # here, like the imports below: finding the cached sops needs none

    minimum = MIN_SOPS_VERSION if tool == "sops" else MIN_AGE_VERSION
    on_path = shutil.which(tool, path=places.env.get("PATH"))
    if on_path:
        found = version_of(on_path, places.env)
        if found is None or found < minimum:
            raise ToolError(
                f"{tool} on PATH ({on_path}) is version {_fmt(found)}; need "
                f"{_fmt(minimum)} or newer",
                f"run `sops-deploy tools install {tool}` to install a pinned {tool}",
            )
        return on_path
    raise ToolError(
        f"{tool} is not installed",
        f"run `sops-deploy tools install {tool}` (installs {tool} {version} into "
        f"{places.cache}), or install {tool} {_fmt(minimum)}+ on PATH",
    )


def _fmt(v: tuple[int, ...] | None) -> str:
    return ".".join(map(str, v)) if v else "unknown"


def default_version(tool: str) -> str:
    return DEFAULT_SOPS_VERSION if tool == "sops" else DEFAULT_AGE_VERSION


def install(
    places: ToolPlaces,
    tool: str,
    version: str,
    source: str,
    *,
    mirror: str | None = None,
    sha256: str | None = None,
    allow_unverified: bool = False,
    plat: Platform | None = None,
    warn: Callable[[str], None] = lambda _msg: None,
    say: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Install `tool` at `version` from `source` into the cache; a no-op when present and
    verified (see `toolcheck`), a reinstall when present but not. `say` hears each slow step.

    Returns the path of the tool's main binary (`sops`, or `age` beside `age-keygen`).
    """
    if tool not in BINARIES:
        raise ToolError(f"unknown tool {tool!r}", f"choose one of {', '.join(BINARIES)}")
    if source not in SOURCES:
        raise ToolError(f"unknown tools source {source!r}", f"choose one of {', '.join(SOURCES)}")
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise ToolError(
            f"{tool} version {version!r} is not MAJOR.MINOR.PATCH",
            f"pass a release version such as {default_version(tool)}",
        )
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not is_sha256(sha256):
            raise ToolError(
                f"--{tool}-sha256 is not a SHA-256 hex digest",
                "pass the 64 hex characters of the release asset's SHA-256",
            )
    plat = plat or current_platform()
    platform_for(plat.os, plat.arch)
    if source == "system":
        return Path(
            find_sops(places, version) if tool == "sops" else _on_path(places, tool, version)
        )
    from sops_deploy.sops import toolcheck

    target_dir = places.cache / tool / version / plat.tag
    files = [target_dir / name for name in BINARIES[tool]]
    expected = sha256 or PINNED_SHA256.get((tool, version, plat.os, plat.arch))
    if all(f.is_file() for f in files):
        pinned = expected if tool == "sops" else None  # age's digest is its archive's
        why = toolcheck.problem(places, tool, version, plat.tag, files, pinned)
        if why is None:
            return files[0]
        warn(f"the cached {tool} in {target_dir} is not used: {why}; installing it again")
    if source == "go" or (source == "auto" and expected is None and not allow_unverified):
        return _go_install(places, tool, version, plat, target_dir, say, "--source go")
    release = Release(tool, version, plat, mirror or GITHUB)
    say(f"downloading {tool} {version} from {release.url(release.asset)} …")
    try:
        path = release.install(
            target_dir,
            expected,
            allow_unverified=allow_unverified,
            warn=warn,
            timeout=PROBE_TIMEOUT if source == "auto" else DOWNLOAD_TIMEOUT,
        )
    except Unreachable as exc:
        if source != "auto":
            raise
        why = f"no release download reachable: {exc.message}"
        return _go_install(places, tool, version, plat, target_dir, say, why)
    toolcheck.record(places, tool, version, plat.tag, files)
    return path


def _go_install(
    places: ToolPlaces,
    tool: str,
    version: str,
    plat: Platform,
    target_dir: Path,
    say: Callable[[str], None],
    why: str,
) -> Path:
    import shutil

    from sops_deploy.sops import gobuild, toolcheck

    go = shutil.which("go", path=places.env.get("PATH"))
    if go is None:
        raise ToolError(
            f"cannot build {tool} {version}: Go is not installed",
            "install Go (https://go.dev/dl) or use another tools source",
        )
    packages = [f"{pkg}@v{version}" for pkg in GO_PACKAGES[tool]]
    say(f"building {tool} v{version} with go install ({why}) …")
    gobuild.build(go, packages, BINARIES[tool], target_dir, places.env, say)
    # A go build's bytes are listed by no release: its digest is recorded now, in this
    # user's own records, and checked before every later run (toolcheck).
    files = [target_dir / name for name in BINARIES[tool]]
    toolcheck.record(places, tool, version, plat.tag, files)
    return files[0]
