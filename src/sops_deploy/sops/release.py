"""Release downloads: fetch a tool's published asset, verify it, unpack it into place.

The layout is GitHub's (`<base>/<owner>/<repo>/releases/download/v<version>/<asset>`),
so a mirror or GitHub Enterprise works by changing the base URL. An asset must match a
known SHA-256 (pinned here for the default versions, or passed by the user); for sops it
must also match the release's own `checksums.txt`. Downloads go to a temporary directory
inside the cache and are renamed into place only after verification.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sops_deploy.errors import ToolError

BINARIES = {"sops": ("sops",), "age": ("age", "age-keygen")}
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

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Platform:
    """An OS and CPU architecture as release assets name them (`linux`, `amd64`)."""

    os: str
    arch: str

    @property
    def tag(self) -> str:
        return f"{self.os}-{self.arch}"


def is_sha256(text: str) -> bool:
    """64 lowercase hex characters."""
    return bool(_SHA256_RE.match(text))


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
        import tempfile

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
        import shutil
        import tarfile

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
    # Here, not at the top: finding the installed sops (every deploy and validate) must not
    # load urllib.request, http.client, ssl and email.
    import urllib.error
    import urllib.request

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
