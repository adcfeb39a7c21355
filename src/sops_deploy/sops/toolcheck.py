"""Nothing from the tool cache runs unless it matches its digest, checked by this process.

The cache (`$RUNNER_TOOL_CACHE/sops-deploy`, `~/.cache/sops-deploy`) may be shared by every
job on a self-hosted runner, so a binary found there proves nothing by being there. A
cached binary is accepted when its SHA-256 is

- the pinned (or `--sops-sha256`) digest of the release asset, for a tool whose asset is
  the binary itself (sops), or
- the digest this user recorded when it installed the binary (a verified release archive's
  contents, or a `go install` build, whose bytes no release lists), in the records
  directory (`ToolPlaces.records`, default `~/.local/state/sops-deploy/tools`) — trusted only
  when it and the record are this user's own and nobody else can write them.

Hashing sops (~75 MB) costs ~0.1 s, so the record also keeps the file's identity (device,
inode, size, mtime, ctime) at its last full check: an unchanged file is recognised by
`stat` alone. Any write, rename or chmod of the binary changes its ctime or inode, which no
unprivileged user can set back, so the full hash runs again.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from sops_deploy.inputs.settings import ToolPlaces


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _private(path: Path) -> bool:
    """Owned by this user and writable by nobody else (so nobody else wrote it)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _record_path(places: ToolPlaces, tool: str, version: str, tag: str) -> Path:
    return places.records / f"{tool}-{version}-{tag}.json"


def _read_record(path: Path) -> dict[str, dict[str, object]]:
    if not (_private(path.parent) and _private(path) and path.is_file()):
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record(
    places: ToolPlaces,
    tool: str,
    version: str,
    tag: str,
    files: list[Path],
    digests: dict[str, str] | None = None,
) -> None:
    """Remember the digests (and identities) of binaries this user installed or checked."""
    places.records.mkdir(parents=True, exist_ok=True, mode=0o700)
    if places.records.stat().st_uid == os.geteuid():
        places.records.chmod(0o700)
    known = digests or {}
    entries = {
        f.name: {"sha256": known.get(f.name) or sha256_file(f), "stat": _identity(f.stat())}
        for f in files
    }
    path = _record_path(places, tool, version, tag)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(entries, fh)
    os.replace(tmp, path)


def problem(
    places: ToolPlaces,
    tool: str,
    version: str,
    tag: str,
    files: list[Path],
    pinned: str | None,
) -> str | None:
    """None when every one of `files` may run; otherwise why not (names, never contents).

    `pinned` is the release asset's digest when the asset is the binary itself (sops).
    """
    entries = _read_record(_record_path(places, tool, version, tag))
    digests: dict[str, str] = {}
    fresh = False
    for f in files:
        entry = entries.get(f.name) or {}
        try:
            st = f.stat()
        except OSError as exc:
            return f"cannot read {f}: {exc.strerror or exc}"
        recorded = entry.get("sha256")
        if entry.get("stat") == _identity(st) and isinstance(recorded, str):
            digests[f.name] = recorded  # unchanged since this user's last full check
            continue
        actual = sha256_file(f)
        if actual not in (pinned, recorded):
            if pinned or recorded:
                wanted = [
                    what
                    for what, known in (
                        ("the pinned release digest", pinned),
                        ("the digest recorded when this user installed it", recorded),
                    )
                    if known
                ]
                return f"{f.name} has SHA-256 {actual[:16]}…, which is not {' nor '.join(wanted)}"
            return (
                f"{f.name} (SHA-256 {actual[:16]}…) has no pinned release digest and no "
                f"record in {places.records} that this user installed it"
            )
        digests[f.name] = actual
        fresh = True
    if fresh:
        record(places, tool, version, tag, files, digests)
    return None
