"""The real readers the fidelity tests and scripts/reader_matrix.py compare against.

Each is built or installed once into the user cache, keyed by the hash of what pins it:
Go harnesses (`composeparse`: compose-go; `kvfileparse`: docker/cli `pkg/kvfile`) with
`go build`, Node's readers (`nodeparse`: npm dotenv from its lock file with `npm ci`, and
`util.parseEnv`), and systemd's `load_env_file` loaded from Debian's `libsystemd-shared`
through ctypes. Every long-lived reader speaks JSON lines: `{"path": ...}` in, one answer out.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sops_deploy.inputs.environment import tool_places

HERE = Path(__file__).parent
Reader = Callable[[Path], dict[str, Any]]


def cache_root() -> Path:
    """The user cache sops-deploy uses for its tools (~/.cache/sops-deploy)."""
    return tool_places(os.environ).cache


class ReaderMissing(RuntimeError):
    """A reader cannot be built or found here (the message says what to install)."""


def _cached_dir(name: str, sources: list[Path]) -> Path:
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.read_bytes())
    return cache_root() / "test-tools" / f"{name}-{digest.hexdigest()[:16]}"


def go_binary(name: str) -> Path:
    """Build tests/<name> (a Go module) once per content hash into the user cache."""
    source = HERE / name
    target = _cached_dir(name, [source / f for f in ("go.mod", "go.sum", "main.go")])
    binary = target / name
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise ReaderMissing(f"Go is needed to build tests/{name}")
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f"{name}.tmp{os.getpid()}"
    proc = subprocess.run(
        [go, "build", "-mod=readonly", "-trimpath", "-o", str(tmp), "."],
        cwd=source,
        env={**os.environ, "CGO_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise ReaderMissing(f"go build of tests/{name} failed:\n{proc.stderr}")
    os.replace(tmp, binary)
    return binary


def node_modules() -> Path:
    """tests/nodeparse's locked npm packages, installed once with `npm ci` into the cache."""
    source = HERE / "nodeparse"
    target = _cached_dir("nodeparse", [source / "package.json", source / "package-lock.json"])
    if (target / "node_modules" / "dotenv" / "package.json").is_file():
        return target / "node_modules"
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise ReaderMissing("node and npm are needed for the Node readers (apt-get install npm)")
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(source / name, tmp / name)
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise ReaderMissing(f"npm ci for tests/nodeparse failed:\n{proc.stderr}")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target / "node_modules"


@contextmanager
def json_lines(argv: list[str], env: dict[str, str] | None = None) -> Iterator[Reader]:
    """A long-lived reader process: one JSON request line in, one answer line out."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        env=env,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def read(path: Path) -> dict[str, Any]:
        stdin.write(json.dumps({"path": str(path)}) + "\n")
        stdin.flush()
        answer: dict[str, Any] = json.loads(stdout.readline())
        return answer

    try:
        yield read
    finally:
        stdin.close()
        proc.wait(timeout=30)
        stdout.close()


@contextmanager
def go_reader(name: str) -> Iterator[Reader]:
    """compose-go (`composeparse`) or docker kvfile (`kvfileparse`)."""
    with json_lines([str(go_binary(name))]) as read:
        yield read


@contextmanager
def node_reader() -> Iterator[Reader]:
    """npm dotenv and util.parseEnv, one process; answers carry both."""
    modules = node_modules()
    node = shutil.which("node") or "node"
    env = {"PATH": os.environ.get("PATH", ""), "NODE_PATH": str(modules)}
    with json_lines([node, str(HERE / "nodeparse" / "read.js")], env) as read:
        yield read


# --- systemd ------------------------------------------------------------------------------

_CHARPP = ctypes.POINTER(ctypes.c_char_p)


def systemd_library() -> ctypes.CDLL:
    """Debian's libsystemd-shared (the library PID 1 itself links), with the calls typed."""
    found = sorted(
        glob.glob("/usr/lib/*/systemd/libsystemd-shared-*.so")
        + glob.glob("/lib/systemd/libsystemd-shared-*.so")
    )
    if not found:
        raise ReaderMissing("libsystemd-shared is missing (apt-get install systemd)")
    lib = ctypes.CDLL(found[-1])
    # int load_env_file(FILE *f, const char *fname, char ***ret)  (src/basic/env-file.c)
    lib.load_env_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(_CHARPP)]
    lib.load_env_file.restype = ctypes.c_int
    # char **strv_env_clean_with_callback(char **l, void (*cb)(const char*, void*), void *u)
    lib.strv_env_clean_with_callback.argtypes = [_CHARPP, ctypes.c_void_p, ctypes.c_void_p]
    lib.strv_env_clean_with_callback.restype = _CHARPP
    # bool env_assignment_is_valid(const char *e)  (src/basic/env-util.c)
    lib.env_assignment_is_valid.argtypes = [ctypes.c_char_p]
    lib.env_assignment_is_valid.restype = ctypes.c_bool
    lib.strv_free.argtypes = [_CHARPP]
    lib.strv_free.restype = ctypes.c_void_p
    return lib


def systemd_read(lib: ctypes.CDLL, path: Path) -> dict[str, Any]:
    """What PID 1 puts in a unit's environment from `EnvironmentFile=path`.

    As `exec_context_load_environment` does it: `load_env_file(NULL, path, &p)`, then
    `strv_env_clean_with_callback`, which drops every assignment `env_assignment_is_valid`
    refuses and keeps the last of duplicates. {"error": errno} if loading fails.
    """
    strv = _CHARPP()
    r = lib.load_env_file(None, os.fsencode(path), ctypes.byref(strv))
    if r < 0:
        return {"error": -r}
    strv = lib.strv_env_clean_with_callback(strv, None, None)
    env: dict[str, str] = {}
    i = 0
    while strv and strv[i] is not None:
        item: bytes = strv[i]
        assert lib.env_assignment_is_valid(item)
        key, _, value = item.decode("utf-8").partition("=")
        env[key] = value
        i += 1
    lib.strv_free(strv)
    return {"env": env}
