"""The tool installer: release downloads verified against known digests, cached, refused
when tampered, against a real release layout served on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sops_deploy.errors import ToolError
from sops_deploy.inputs.environment import tool_places
from sops_deploy.inputs.settings import ToolPlaces
from sops_deploy.sops import tools
from tests.releases import ReleaseServer, age_tarball, sha256, sops_bytes

SOPS_V = "3.99.1"  # a version nothing pins: the caller must pass its digest
AGE_V = "1.99.1"


@pytest.fixture(scope="session")
def real_assets() -> tuple[bytes, bytes]:
    """The real sops binary and a real age tarball (read before any cache is redirected)."""
    return sops_bytes(), age_tarball()


@pytest.fixture
def server(real_assets: tuple[bytes, bytes]) -> Iterator[ReleaseServer]:
    """A release server holding sops SOPS_V and age AGE_V for this platform."""
    srv = ReleaseServer()
    srv.add_sops(SOPS_V, real_assets[0])
    srv.add_age(AGE_V, real_assets[1])
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """A fresh tool cache, the way a runner provides one (RUNNER_TOOL_CACHE)."""
    return tmp_path / "toolcache" / "sops-deploy"


@pytest.fixture
def places(cache: Path) -> ToolPlaces:
    """Where the front door would look with RUNNER_TOOL_CACHE set to the fresh cache."""
    found = tool_places({**os.environ, "RUNNER_TOOL_CACHE": str(cache.parent)})
    assert found.cache == cache
    return found


def tool_dir(cache: Path, tool: str, version: str) -> Path:
    return cache / tool / version / tools.current_platform().tag


def leftovers(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []


def test_release_install_verifies_caches_and_runs(
    places: ToolPlaces, server: ReleaseServer, cache: Path, real_assets: tuple[bytes, bytes]
) -> None:
    """Both tools install from the mirror into <cache>/<tool>/<version>/<os-arch> and run."""
    sops = tools.install(
        places, "sops", SOPS_V, "release", mirror=server.url, sha256=sha256(real_assets[0])
    )
    age = tools.install(
        places, "age", AGE_V, "release", mirror=server.url, sha256=sha256(real_assets[1])
    )
    assert sops == tool_dir(cache, "sops", SOPS_V) / "sops"
    assert age == tool_dir(cache, "age", AGE_V) / "age"
    assert (age.parent / "age-keygen").is_file()
    assert sops.read_bytes() == real_assets[0]
    assert os.access(sops, os.X_OK)
    version = subprocess.run(
        [str(sops), "--version"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "SOPS_DISABLE_VERSION_CHECK": "1"},
    )
    assert version.stdout.startswith("sops ")
    keygen = subprocess.run(
        [str(age.parent / "age-keygen")], capture_output=True, text=True, check=True
    )
    assert keygen.stdout.startswith("# created:")
    assert not [p for p in cache.rglob(".download-*")], "temp download dir left behind"


def test_second_install_downloads_nothing(
    places: ToolPlaces, server: ReleaseServer, cache: Path, real_assets: tuple[bytes, bytes]
) -> None:
    """A cache hit makes no request at all."""
    digests = {"sops": sha256(real_assets[0]), "age": sha256(real_assets[1])}
    versions = {"sops": SOPS_V, "age": AGE_V}
    for tool in ("sops", "age"):
        tools.install(
            places, tool, versions[tool], "release", mirror=server.url, sha256=digests[tool]
        )
    first = len(server.hits)
    assert first == 3  # sops checksums.txt + sops binary + age tarball
    for tool in ("sops", "age"):
        tools.install(
            places, tool, versions[tool], "release", mirror=server.url, sha256=digests[tool]
        )
    assert len(server.hits) == first


@pytest.mark.parametrize(
    ("tool", "tamper"),
    [
        pytest.param("sops", "wrong-digest-given", id="sops-digest-differs"),
        pytest.param("sops", "checksums-disagree", id="sops-checksums-file-differs"),
        pytest.param("sops", "binary-swapped", id="sops-binary-swapped"),
        pytest.param("age", "binary-swapped", id="age-tarball-swapped"),
    ],
)
def test_tampered_download_is_refused_and_nothing_installed(
    places: ToolPlaces,
    server: ReleaseServer,
    cache: Path,
    real_assets: tuple[bytes, bytes],
    tool: str,
    tamper: str,
) -> None:
    """Any disagreement between the download, checksums.txt and the known digest refuses."""
    real = real_assets[0] if tool == "sops" else real_assets[1]
    version = SOPS_V if tool == "sops" else AGE_V
    digest = sha256(real)
    if tamper == "wrong-digest-given":
        digest = "a" * 64
    elif tamper == "checksums-disagree":
        server.add_sops(SOPS_V, real, listed_digest="b" * 64)
    elif tool == "sops":
        server.add_sops(SOPS_V, real + b"\0evil")
        # the attacker also rewrote checksums.txt; the known digest still catches it
    else:
        server.add_age(AGE_V, age_tarball_with_extra())
    with pytest.raises(ToolError) as info:
        tools.install(places, tool, version, "release", mirror=server.url, sha256=digest)
    assert "nothing installed" in info.value.message
    assert info.value.hint
    assert leftovers(cache) == []


def age_tarball_with_extra() -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("age", "age-keygen"):
            data = b"#!/bin/sh\necho pwned\n"
            info = tarfile.TarInfo(f"age/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_default_version_pin_rejects_a_non_upstream_build(
    places: ToolPlaces, real_assets: tuple[bytes, bytes], cache: Path
) -> None:
    """The pinned digest of the default sops refuses any other bytes served under its name."""
    srv = ReleaseServer()
    srv.add_sops(tools.DEFAULT_SOPS_VERSION, real_assets[0] + b"\0local-build")
    srv.start()
    try:
        with pytest.raises(ToolError, match="not the known digest"):
            tools.install(places, "sops", tools.DEFAULT_SOPS_VERSION, "release", mirror=srv.url)
    finally:
        srv.stop()
    assert leftovers(cache) == []


def test_unknown_version_without_digest_is_refused(
    places: ToolPlaces, server: ReleaseServer, cache: Path
) -> None:
    """A version with no pinned digest needs --sops-sha256 or --allow-unverified."""
    with pytest.raises(ToolError, match="no known SHA-256") as info:
        tools.install(places, "age", AGE_V, "release", mirror=server.url)
    assert "--age-sha256" in info.value.hint
    assert server.hits == []
    assert leftovers(cache) == []


def test_allow_unverified_installs_and_warns(
    places: ToolPlaces, server: ReleaseServer, cache: Path
) -> None:
    """--allow-unverified installs a version with no known digest, and says so loudly."""
    warnings: list[str] = []
    sops = tools.install(
        places,
        "sops",
        SOPS_V,
        "release",
        mirror=server.url,
        allow_unverified=True,
        warn=warnings.append,
    )
    assert sops.is_file()
    assert len(warnings) == 1
    assert "WITHOUT a known SHA-256" in warnings[0]
    assert "checksums.txt" in warnings[0]


def test_missing_release_is_a_clear_404(
    places: ToolPlaces, server: ReleaseServer, cache: Path
) -> None:
    """A version the mirror does not hold fails naming the URL and the HTTP status."""
    with pytest.raises(ToolError) as info:
        tools.install(places, "age", "1.0.404", "release", mirror=server.url, sha256="c" * 64)
    assert "HTTP 404" in info.value.message
    assert "age-v1.0.404-" in info.value.message
    assert "releases/download" in info.value.hint
    assert leftovers(cache) == []


@pytest.mark.parametrize(
    ("system", "machine"),
    [
        pytest.param("Windows", "AMD64", id="windows"),
        pytest.param("Linux", "riscv64", id="linux-riscv64"),
        pytest.param("FreeBSD", "amd64", id="freebsd"),
        pytest.param("Darwin", "i386", id="darwin-i386"),
    ],
)
def test_unsupported_platform_is_a_clear_error(system: str, machine: str) -> None:
    """Anything but Linux/macOS on amd64/arm64 is refused, naming the platform."""
    with pytest.raises(ToolError) as info:
        tools.platform_for(system, machine)
    assert f"{system.lower()}/{machine.lower()}" in info.value.message
    assert "Linux and macOS, amd64 or arm64" in info.value.hint


@pytest.mark.parametrize(
    ("system", "machine", "tag"),
    [
        pytest.param("Linux", "x86_64", "linux-amd64", id="linux-amd64"),
        pytest.param("Linux", "aarch64", "linux-arm64", id="linux-arm64"),
        pytest.param("Darwin", "x86_64", "darwin-amd64", id="darwin-amd64"),
        pytest.param("Darwin", "arm64", "darwin-arm64", id="darwin-arm64"),
    ],
)
def test_supported_platforms_have_pinned_digests(system: str, machine: str, tag: str) -> None:
    """Every supported platform maps to its cache tag and has pins for both default tools."""
    plat = tools.platform_for(system, machine)
    assert plat.tag == tag
    assert ("sops", tools.DEFAULT_SOPS_VERSION, plat.os, plat.arch) in tools.PINNED_SHA256
    assert ("age", tools.DEFAULT_AGE_VERSION, plat.os, plat.arch) in tools.PINNED_SHA256


def test_cli_installs_both_tools_from_a_mirror(
    server: ReleaseServer, cache: Path, real_assets: tuple[bytes, bytes]
) -> None:
    """`sops-deploy tools install all --source mirror` prints both paths; rerun is a no-op."""
    args = [
        sys.executable,
        "-m",
        "sops_deploy",
        "tools",
        "install",
        "all",
        "--source",
        "mirror",
        "--mirror",
        server.url,
        "--sops-version",
        SOPS_V,
        "--sops-sha256",
        sha256(real_assets[0]),
        "--age-version",
        AGE_V,
        "--age-sha256",
        sha256(real_assets[1]),
    ]
    for _ in range(2):
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "RUNNER_TOOL_CACHE": str(cache.parent)},
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == [
            str(tool_dir(cache, "sops", SOPS_V) / "sops"),
            str(tool_dir(cache, "age", AGE_V) / "age"),
        ]
    assert len(server.hits) == 3


def test_cli_mirror_source_needs_a_url(cache: Path) -> None:
    """`--source mirror` without `--mirror` is a usage error (exit 2)."""
    proc = subprocess.run(
        [sys.executable, "-m", "sops_deploy", "tools", "install", "--source", "mirror"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("SOPS_DEPLOY_")},
    )
    assert proc.returncode == 2
    assert "--mirror URL" in proc.stderr
