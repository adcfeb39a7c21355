"""Nothing the action built into the tool cache runs again unless it is what this user built.

The runner's tool cache may be shared by every job on a self-hosted runner, so a venv (or
uv) found there with its `.complete` marker proves only that someone put it there. When
prepare.py builds one, it records every file's SHA-256 (a symlink: its target) and stat
identity in this user's own state directory (`$XDG_STATE_HOME/sops-deploy/setup`, default
`~/.local/state/sops-deploy/setup`: created 0700, trusted only when it and the record are
this user's and nobody else can write them). Before reuse, the tree must hold exactly the
recorded files: a file whose identity (device, inode, size, mtime, ctime) is unchanged is
taken as checked (any write, rename or chmod changes its ctime, which no unprivileged
user can set back), any other is hashed again. An added file fails too (a `.pth` file in
site-packages would run at start-up).

`__pycache__` directories are left out: the action runs the venv's Python with
PYTHONPYCACHEPREFIX set to a private directory, so Python neither reads nor writes
bytecode inside the cache. Standard library only: this runs before any venv exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path


def state_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sops-deploy"


def private_dir(path: Path) -> Path:
    """`path`, created 0700 (and made so when it is this user's)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_uid == os.geteuid():
        path.chmod(0o700)
    return path


def _private(path: Path) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _digest(path: Path, st: os.stat_result) -> str:
    if stat.S_ISLNK(st.st_mode):
        return "-> " + os.readlink(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _files(root: Path) -> dict[str, tuple[Path, os.stat_result]]:
    out: dict[str, tuple[Path, os.stat_result]] = {}
    for top, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__" and not os.path.islink(Path(top) / d)]
        links = [d for d in os.listdir(top) if os.path.islink(Path(top) / d)]
        for name in {*names, *links}:
            path = Path(top) / name
            st = path.lstat()
            if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                out[path.relative_to(root).as_posix()] = (path, st)
    return out


def record(root: Path, name: str, records: Path) -> None:
    """Remember what `root` holds now (just built by this user)."""
    entries = {rel: [_digest(path, st), *_identity(st)] for rel, (path, st) in _files(root).items()}
    target = private_dir(records) / f"{name}.json"
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(entries, fh)
    os.replace(tmp, target)


def problem(root: Path, name: str, records: Path) -> str | None:
    """None when `root` holds exactly what this user recorded; otherwise why not."""
    target = records / f"{name}.json"
    if not (_private(records) and _private(target) and target.is_file()):
        return f"no record that this user built it (looked in {records})"
    try:
        entries = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"its record {target} is unreadable"
    files = _files(root)
    added = sorted(set(files) - set(entries))
    missing = sorted(set(entries) - set(files))
    if added or missing:
        which = added[:1] or missing[:1]
        return f"{which[0]} was {'added' if added else 'removed'} after it was built"
    changed = False
    for rel, (path, st) in files.items():
        want = entries[rel]
        if want[1:] == _identity(st):
            continue
        if _digest(path, st) != want[0]:
            return f"{rel} differs from what was built (SHA-256)"
        changed = True
    if changed:  # same bytes, new identity (e.g. restored from a cache archive)
        record(root, name, records)
    return None
