"""Find or install sops and age, pinned, verified and cached.

Sources:
- `release`: the project's published release assets (sops: the binary, checked against the
  release's `sops-v{V}.checksums.txt`; age: the `.tar.gz`). Every asset must match a known
  SHA-256 digest: one pinned below for the default versions, or one the user passes.
  `tools-mirror` is the same layout under another base URL (GitHub Enterprise, mirrors).
- `system`: what is on PATH, at least a minimum version.
- `go`: `go install` of a pinned version.
- `auto`: `release` when the release host answers quickly, else `go`.

Installs land in a user cache directory,
`$RUNNER_TOOL_CACHE/sops-deploy/<tool>/<version>/<os>-<arch>` on runners, otherwise
`$XDG_CACHE_HOME/sops-deploy/...` (default `~/.cache/sops-deploy/...`), so the next run
finds them and downloads nothing. A download goes to a temporary file inside the cache,
is verified, and only then renamed into place: a mismatch installs nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sops_deploy.errors import ToolError

DEFAULT_SOPS_VERSION = "3.13.2"
DEFAULT_AGE_VERSION = "1.3.1"
MIN_SOPS_VERSION = (3, 9, 0)
MIN_AGE_VERSION = (1, 1, 0)
GO_PACKAGES = {
    "sops": ("github.com/getsops/sops/v3/cmd/sops",),
    "age": ("filippo.io/age/cmd/age", "filippo.io/age/cmd/age-keygen"),
}
BINARIES = {"sops": ("sops",), "age": ("age", "age-keygen")}
TOOLS = tuple(BINARIES)
SOURCES = ("auto", "release", "system", "go")
GITHUB = "https://github.com"
RELEASE_PATHS = {
    "sops": "getsops/sops/releases/download",
    "age": "FiloSottile/age/releases/download",
}
DOWNLOAD_TIMEOUT = 60.0
PROBE_TIMEOUT = 5.0  # `auto` gives up on an unreachable release host this quickly

# SHA-256 of the published release assets for the default versions. Each value was taken
# from public pins of the upstream release files and cross-checked in at least two
# independent sources; the sops values are those of the release's checksums.txt.
PINNED_SHA256: dict[tuple[str, str, str, str], str] = {
    ("sops", "3.13.2", "linux", "amd64"): (
        "154dfe4cd70554bdd82b98e4cd4acf191d43d01ead6f00a73477aa44c4ac42ef"
    ),
    ("sops", "3.13.2", "linux", "arm64"): (
        "78abf2e15c86250a1553ae6f53aba96be6b2a8126f160b1534959add3467ad76"
    ),
    ("sops", "3.13.2", "darwin", "amd64"): (
        "5a66836229ff4a73779b19644b6db28fd574a6b995c15fc333469b2f93ee2acd"
    ),
    ("sops", "3.13.2", "darwin", "arm64"): (
        "412c475b52f167f1facd75d564422ffd1fa5302aaa7a404bdf4e30087e04b5a8"
    ),
    ("age", "1.3.1", "linux", "amd64"): (
        "bdc69c09cbdd6cf8b1f333d372a1f58247b3a33146406333e30c0f26e8f51377"
    ),
    ("age", "1.3.1", "linux", "arm64"): (
        "c6878a324421b69e3e20b00ba17c04bc5c6dab0030cfe55bf8f68fa8d9e9093a"
    ),
    ("age", "1.3.1", "darwin", "amd64"): (
        "2b233301ad21ab7b1eabd9ae1198a164005fa4928fcdd745d47c39f8593209d7"
    ),
    ("age", "1.3.1", "darwin", "arm64"): (
        "01120ea2cbf0463d4c6bd767f99f3271bbed1cdc8a9aa718a76ba1fe4f01998b"
    ),
}

_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Platform:
    os: str
    arch: str

    @property
    def tag(self) -> str:
        return f"{self.os}-{self.arch}"


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
    return platform_for(platform.system(), platform.machine())


def cache_root() -> Path:
    runner = os.environ.get("RUNNER_TOOL_CACHE")
    if runner:
        return Path(runner) / "sops-deploy"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "sops-deploy"


def cached_path(tool: str, version: str, plat: Platform | None = None) -> Path:
    plat = plat or current_platform()
    return cache_root() / tool / version / plat.tag / BINARIES.get(tool, (tool,))[0]


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
    return _on_path("sops", version)


def _on_path(tool: str, version: str) -> str:
    minimum = MIN_SOPS_VERSION if tool == "sops" else MIN_AGE_VERSION
    on_path = shutil.which(tool)
    if on_path:
        found = version_of(on_path)
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
        f"{cache_root()}), or install {tool} {_fmt(minimum)}+ on PATH",
    )


def _fmt(v: tuple[int, ...] | None) -> str:
    return ".".join(map(str, v)) if v else "unknown"


def default_version(tool: str) -> str:
    return DEFAULT_SOPS_VERSION if tool == "sops" else DEFAULT_AGE_VERSION


def install(
    tool: str,
    version: str,
    source: str,
    *,
    mirror: str | None = None,
    sha256: str | None = None,
    allow_unverified: bool = False,
    plat: Platform | None = None,
    warn: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Install `tool` at `version` from `source` into the cache; a no-op when present.

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
        if not _SHA256_RE.match(sha256):
            raise ToolError(
                f"--{tool}-sha256 is not a SHA-256 hex digest",
                "pass the 64 hex characters of the release asset's SHA-256",
            )
    plat = plat or current_platform()
    platform_for(plat.os, plat.arch)
    if source == "system":
        return Path(find_sops(version) if tool == "sops" else _on_path(tool, version))
    target_dir = cache_root() / tool / version / plat.tag
    if all((target_dir / name).is_file() for name in BINARIES[tool]):
        return target_dir / BINARIES[tool][0]
    if source == "go":
        return _go_install(tool, version, target_dir)
    expected = sha256 or PINNED_SHA256.get((tool, version, plat.os, plat.arch))
    if source == "auto" and expected is None and not allow_unverified:
        return _go_install(tool, version, target_dir)
    release = Release(tool, version, plat, mirror or GITHUB)
    try:
        return release.install(
            target_dir,
            expected,
            allow_unverified=allow_unverified,
            warn=warn,
            timeout=PROBE_TIMEOUT if source == "auto" else DOWNLOAD_TIMEOUT,
        )
    except Unreachable:
        if source != "auto":
            raise
    return _go_install(tool, version, target_dir)


class Unreachable(ToolError):
    """The release host did not answer (DNS, connect, timeout): `auto` falls back to `go`."""


@dataclass(frozen=True)
class Release:
    """One tool's release assets under a base URL laid out like GitHub releases."""

    tool: str
    version: str
    plat: Platform
    base: str = GITHUB

    @property
    def asset(self) -> str:
        v, p = self.version, self.plat
        if self.tool == "sops":
            return f"sops-v{v}.{p.os}.{p.arch}"
        return f"age-v{v}-{p.os}-{p.arch}.tar.gz"

    def url(self, name: str) -> str:
        return f"{self.base.rstrip('/')}/{RELEASE_PATHS[self.tool]}/v{self.version}/{name}"

    def install(
        self,
        target_dir: Path,
        expected: str | None,
        *,
        allow_unverified: bool,
        warn: Callable[[str], None],
        timeout: float,
    ) -> Path:
        if expected is None and not allow_unverified:
            raise ToolError(
                f"no known SHA-256 for {self.asset}: refusing to install an unverified "
                f"{self.tool} {self.version}",
                f"pass --{self.tool}-sha256 (action input `{self.tool}-sha256`) with the "
                f"digest of {self.asset}, use the default version, or pass "
                "--allow-unverified to accept the risk",
            )
        published = None
        if self.tool == "sops":
            published = self._published_digest(timeout)
            if expected is not None and published != expected:
                raise ToolError(
                    f"{self.url(f'sops-v{self.version}.checksums.txt')} lists {published} "
                    f"for {self.asset}, not the known digest {expected}; nothing installed",
                    "the release or mirror was altered, or the pinned digest is wrong: "
                    "check the release page before trusting this download",
                )
        if expected is None:
            warn(
                f"installing {self.tool} {self.version} WITHOUT a known SHA-256 "
                "(--allow-unverified)"
                + ("; checked only against the release's own checksums.txt" if published else "")
            )
        target_dir.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target_dir.parent, prefix=".download-") as tmp:
            staged = Path(tmp) / self.asset
            actual = _download(self.url(self.asset), staged, timeout)
            want = expected or published
            if want is not None and actual != want:
                raise ToolError(
                    f"SHA-256 mismatch for {self.url(self.asset)}: got {actual}, "
                    f"expected {want}; nothing installed",
                    "the download was altered or the digest is wrong: do not use this "
                    "mirror until you know which",
                )
            binaries = self._unpack(staged, Path(tmp))
            target_dir.mkdir(parents=True, exist_ok=True)
            for name, path in binaries.items():
                path.chmod(0o755)
                os.replace(path, target_dir / name)
        return target_dir / BINARIES[self.tool][0]

    def _published_digest(self, timeout: float) -> str:
        name = f"sops-v{self.version}.checksums.txt"
        text = _get(self.url(name), timeout).decode("utf-8", "replace")
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == self.asset:
                digest = parts[0].lower()
                if _SHA256_RE.match(digest):
                    return digest
        raise ToolError(
            f"{self.url(name)} has no SHA-256 line for {self.asset}",
            "check that the mirror holds the complete release",
        )

    def _unpack(self, staged: Path, tmp: Path) -> dict[str, Path]:
        if self.tool == "sops":
            return {"sops": staged}
        wanted = {f"age/{name}": name for name in BINARIES["age"]}
        out: dict[str, Path] = {}
        try:
            with tarfile.open(staged, "r:gz") as tar:
                for member in tar.getmembers():
                    name = wanted.get(member.name.removeprefix("./"))
                    if name is None or not member.isfile():
                        continue
                    src = tar.extractfile(member)
                    if src is None:
                        continue
                    dest = tmp / f"unpacked-{name}"
                    with src, open(dest, "wb") as fh:
                        shutil.copyfileobj(src, fh)
                    out[name] = dest
        except (tarfile.TarError, OSError) as exc:
            raise ToolError(f"{self.asset} is not a readable .tar.gz: {exc}", "") from None
        missing = sorted(set(wanted.values()) - set(out))
        if missing:
            raise ToolError(
                f"{self.asset} lacks {', '.join('age/' + m for m in missing)}; nothing installed",
                "check that the mirror serves the upstream age release archive",
            )
        return out


def _open(url: str, timeout: float) -> io.BufferedIOBase:
    if not url.startswith(("https://", "http://")):
        raise ToolError(f"{url} is not an http(s) URL", "pass --mirror https://host")
    request = urllib.request.Request(url, headers={"User-Agent": "sops-deploy"})  # noqa: S310
    try:
        response: io.BufferedIOBase = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as exc:
        exc.close()
        raise ToolError(
            f"{url} answered HTTP {exc.code}",
            "check the version exists and, with --mirror, that the mirror has the "
            "release layout <mirror>/<owner>/<repo>/releases/download/v<version>/<asset>",
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(
            f"cannot reach {url}: {reason}",
            "check the network, use --mirror, or --source go / system",
        ) from None
    return response


def _get(url: str, timeout: float) -> bytes:
    with _open(url, timeout) as response:
        return response.read()


def _download(url: str, dest: Path, timeout: float) -> str:
    """Stream `url` into `dest`; returns the SHA-256 of what was written."""
    digest = hashlib.sha256()
    try:
        with _open(url, timeout) as response, open(dest, "wb") as fh:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                fh.write(chunk)
    except (TimeoutError, OSError) as exc:
        raise Unreachable(f"download of {url} failed: {exc}", "retry, or use --mirror") from None
    return digest.hexdigest()


def _go_install(tool: str, version: str, target_dir: Path) -> Path:
    go = shutil.which("go")
    if go is None:
        raise ToolError(
            f"cannot build {tool} {version}: Go is not installed",
            "install Go (https://go.dev/dl) or use another tools source",
        )
    target_dir.mkdir(parents=True, exist_ok=True)
    packages = [f"{pkg}@v{version}" for pkg in GO_PACKAGES[tool]]
    with tempfile.TemporaryDirectory(dir=target_dir.parent, prefix=".go-") as gobin:
        env = {**os.environ, "GOBIN": gobin, "CGO_ENABLED": "0", "GOFLAGS": "-trimpath"}
        proc = subprocess.run(
            [go, "install", *packages],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=gobin,
        )
        if proc.returncode != 0:
            raise ToolError(
                f"`go install {' '.join(packages)}` failed: {proc.stderr.strip()[-500:]}",
                "check the version exists and the Go module proxy is reachable",
            )
        for name in BINARIES[tool]:
            os.replace(Path(gobin) / name, target_dir / name)
    return target_dir / BINARIES[tool][0]
