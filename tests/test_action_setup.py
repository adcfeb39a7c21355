"""The action's setup steps: the venv on every supported Python, and setup failures that
say what to fix on the run page and leave nothing in the tool cache.

Two ways in, both real:
- the "Prepare Python" step's own `run:` script, taken from action.yml and run by bash
  with each pyenv interpreter first on PATH (what a runner does, minus the runner);
- real `act` runs of tests/workflows/action-test.yml for the failures a user meets there.

Offline: wheels come from the hash-locked wheelhouse `make setup` downloads for every
supported Python (PIP_NO_INDEX + PIP_FIND_LINKS, which the prepare step passes on to uv);
a "network" is a refused port on 127.0.0.1; a "mirror" is a directory or a 127.0.0.1 server.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sops_deploy import __version__
from tests.releases import ReleaseServer, sops_bytes
from tests.support import REPO

ACT = REPO / ".venv" / "bin" / "act"
WORKFLOW = "tests/workflows/action-test.yml"
PYENV = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
ACTION_FILES = ("action.yml", "pyproject.toml", "README.md", "requirements", "setup", "src")
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")


def wheelhouse() -> Path:
    locks = b"".join((REPO / "requirements" / n).read_bytes() for n in ("action.txt", "uv.txt"))
    path = REPO / ".venv" / f"wheelhouse-{hashlib.sha256(locks).hexdigest()[:12]}"
    assert path.is_dir(), f"{path} is missing: run `make setup`"
    return path


def aws_wheelhouse() -> Path:
    lock = (REPO / "requirements" / "aws.txt").read_bytes()
    path = REPO / ".venv" / f"wheelhouse-aws-{hashlib.sha256(lock).hexdigest()[:12]}"
    assert path.is_dir(), f"{path} is missing: run `make setup`"
    return path


def pyenv_python(minor: str) -> Path:
    found = sorted(PYENV.glob(f"{minor}.*/bin/python{minor}"))
    if not found:
        pytest.skip(f"pyenv has no Python {minor}")
    return found[-1]


def step_script(step_id: str) -> str:
    """The `run:` script of one of the action's steps, as the runner would run it."""
    steps = yaml.safe_load((REPO / "action.yml").read_text())["runs"]["steps"]
    return str(next(s for s in steps if s.get("id") == step_id)["run"])


def leftovers(tool_cache: Path) -> list[str]:
    """Partial builds or downloads left in the tool cache (there must be none)."""
    return [
        str(p.relative_to(tool_cache))
        for p in tool_cache.rglob("*")
        if p.name.startswith((".build-", ".uv-", ".download-", ".go-"))
    ]


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOPS_", "GITHUB_", "RUNNER_", "PIP_", "UV_", "PYTEST_", "PYENV_"))
    }
    return {**env, **extra}


@pytest.fixture(scope="session")
def action_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The action's files as a runner checks them out (the package builds in-tree)."""
    dest = tmp_path_factory.mktemp("action")
    for name in ACTION_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(
                src, dest / name, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
            )
        else:
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


def run_prepare(
    action: Path, tmp_path: Path, path_first: Path, uv_cache: Path, **extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run the prepare step's script with `path_first` first on PATH; its outputs."""
    out = tmp_path / "github_output"
    out.write_text("")
    env = clean_env(
        PATH=f"{path_first}{os.pathsep}{os.environ['PATH']}",
        GITHUB_ACTION_PATH=str(action),
        GITHUB_OUTPUT=str(out),
        RUNNER_TOOL_CACHE=str(tmp_path / "tool_cache"),
        UV_CACHE_DIR=str(uv_cache),
        XDG_STATE_HOME=str(tmp_path / "state"),  # this user's records (setup/cachecheck.py)
        **{"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse()), **extra},
    )
    proc = subprocess.run(
        ["bash", "-e", "-c", step_script("setup")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    return proc, outputs


@pytest.mark.slow
@pytest.mark.parametrize("minor", SUPPORTED)
def test_prepare_builds_the_venv_on_every_supported_python(
    minor: str, action_copy: Path, tmp_path: Path, uv_cache: Path
) -> None:
    """The lock installs on Python 3.10-3.13, markers pick the right pycparser, the venv
    runs sops-deploy, and a second run reuses it without building."""
    python = pyenv_python(minor)
    proc, outputs = run_prepare(action_copy, tmp_path, python.parent, uv_cache)
    assert proc.returncode == 0, proc.stdout[-3000:]
    venv_python = outputs["python"]
    version = subprocess.run(
        [venv_python, "-m", "sops_deploy", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert __version__ in version
    probe = (
        "import sys, importlib.metadata as m; print(sys.version_info[:2], m.version('pycparser'))"
    )
    info = subprocess.run(
        [venv_python, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    major, minor_n = (int(x) for x in minor.split("."))
    assert info.startswith(f"({major}, {minor_n})")
    # requirements/action.txt forks pycparser by Python version (3.12 needs Python 3.11+)
    assert info.endswith("3.11" if minor == "3.10" else "3.12"), info
    assert leftovers(tmp_path / "tool_cache") == []
    again, outputs_again = run_prepare(action_copy, tmp_path, python.parent, uv_cache)
    assert again.returncode == 0
    assert outputs_again["python"] == venv_python
    assert "create the Python environment" not in again.stdout


def test_prepare_installs_the_aws_extra_only_for_what_needs_it(
    action_copy: Path, tmp_path: Path, uv_cache: Path
) -> None:
    """aws-sync (or an aws-sm:// file) gets a venv of its own with the hash-locked boto3;
    a deploy's venv has none (its start-up is untouched)."""
    python = pyenv_python("3.12")
    links = f"{wheelhouse()} {aws_wheelhouse()}"
    plain, plain_out = run_prepare(action_copy, tmp_path, python.parent, uv_cache)
    assert plain.returncode == 0, plain.stdout[-3000:]
    probe = "import importlib.util as u; print(u.find_spec('boto3') is not None)"

    def has_boto3(venv_python: str) -> str:
        return subprocess.run(
            [venv_python, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.strip()

    assert has_boto3(plain_out["python"]) == "False"
    for extra in ({"SD_COMMAND": "aws-sync"}, {"SD_COMMAND": "deploy", "SD_FILE": "aws-sm://x"}):
        aws, aws_out = run_prepare(
            action_copy, tmp_path, python.parent, uv_cache, PIP_FIND_LINKS=links, **extra
        )
        assert aws.returncode == 0, aws.stdout[-3000:]
        assert aws_out["python"].endswith("-aws/bin/python")
        assert has_boto3(aws_out["python"]) == "True"
    assert leftovers(tmp_path / "tool_cache") == []


@pytest.mark.parametrize("minor", ["3.9", "3.8", "2.7"])
def test_prepare_refuses_an_unsupported_python_with_the_fix(
    minor: str, action_copy: Path, tmp_path: Path, uv_cache: Path
) -> None:
    """An old python3 gets one ::error naming its version and the fix, and nothing is built."""
    python = pyenv_python(minor)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python3").symlink_to(python)
    proc, outputs = run_prepare(action_copy, tmp_path, shim, uv_cache)
    assert proc.returncode == 1
    real_version = python.parent.parent.name
    assert re.search(
        rf"^::error title=sops-deploy: unsupported Python::python3 at {re.escape(str(shim))}"
        rf"/python3 is Python {re.escape(real_version)}; .*needs Python 3\.10 to 3\.13\. "
        r"Fix: .*actions/setup-python.*python-version",
        proc.stdout,
        re.M,
    ), proc.stdout
    assert outputs == {}
    assert not (tmp_path / "tool_cache").exists()


@pytest.fixture(scope="session")
def python_without(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Copies of pyenv's 3.11 (hard links) without pip, and without pip and ensurepip: the
    Python of a Debian runner without python3-pip, and without python3-venv too."""
    base = pyenv_python("3.11").parent.parent
    root = tmp_path_factory.mktemp("pythons")
    made: dict[str, Path] = {}
    for name, remove in (("no-pip", ["pip"]), ("no-pip-no-venv", ["pip", "ensurepip"])):
        copy = root / name
        subprocess.run(["cp", "-al", str(base), str(copy)], check=True)
        lib = next((copy / "lib").glob("python3.*"))
        for module in remove:
            for path in [lib / module, *(lib / "site-packages").glob(f"{module}*")]:
                if path.exists():
                    shutil.rmtree(path)
        made[name] = copy / "bin"
    yield made
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_prepare_without_pip_bootstraps_one_with_ensurepip(
    python_without: dict[str, Path], action_copy: Path, tmp_path: Path, uv_cache: Path
) -> None:
    """A python3 with no pip (but venv/ensurepip) still gets its venv, leaving nothing."""
    proc, outputs = run_prepare(action_copy, tmp_path, python_without["no-pip"], uv_cache)
    assert proc.returncode == 0, proc.stdout[-3000:]
    version = subprocess.run(
        [outputs["python"], "-m", "sops_deploy", "--version"], capture_output=True, text=True
    )
    assert __version__ in version.stdout
    assert leftovers(tmp_path / "tool_cache") == []


@pytest.mark.slow
def test_prepare_reports_a_tampered_wheel_and_leaves_nothing(
    action_copy: Path, tmp_path: Path, uv_cache: Path
) -> None:
    """A mirror serving a wheel whose bytes differ from the lock's SHA-256: ::error with the
    fix, no venv, no partial build (uv's own cache is bypassed: a fresh one)."""
    mirror = tmp_path / "mirror"
    shutil.copytree(wheelhouse(), mirror)
    wheel = next(mirror.glob("python_dotenv-*.whl"))
    original = wheel.read_bytes()
    with zipfile.ZipFile(io.BytesIO(original)) as src, zipfile.ZipFile(wheel, "w") as dst:
        for item in src.infolist():  # a well-formed wheel, one module altered
            data = src.read(item)
            dst.writestr(item, data + b"\n# altered\n" if item.filename.endswith(".py") else data)
    proc, outputs = run_prepare(
        action_copy,
        tmp_path,
        pyenv_python("3.11").parent,
        tmp_path / "fresh-uv-cache",
        PIP_FIND_LINKS=str(mirror),
    )
    assert proc.returncode == 1
    assert re.search(
        r"^::error title=sops-deploy: package digest mismatch::the file downloaded for "
        rf"python-dotenv=={re.escape(wheel.name.split('-')[1])} does not match its SHA-256 "
        r"in requirements/action\.txt; "
        r"nothing was installed\. Fix: do not use that index or mirror",
        proc.stdout,
        re.M,
    ), proc.stdout[-3000:]
    assert outputs == {}
    cache = tmp_path / "tool_cache"
    assert leftovers(cache) == []
    assert list((cache / "sops-deploy" / "venv").iterdir()) == []


# --- the same failures through act, as a user sees them --------------------------------


def act_run(
    tmp_path: Path, *, path: str, inputs: dict[str, str], env: dict[str, str] | None = None
) -> tuple[int, str, Path]:
    """One act run of the test workflow with a fresh tool cache; (rc, output, tool cache)."""
    cache = tmp_path / "act-cache"
    args = [
        str(ACT),
        "workflow_dispatch",
        "-W",
        WORKFLOW,
        "-P",
        "ubuntu-latest=-self-hosted",
        "--action-offline-mode",
        "--action-cache-path",
        str(cache),
        "--cache-server-addr",
        "127.0.0.1",
        "--env",
        f"SD_REPO={REPO}",
        "--env",
        f"UV_CACHE_DIR={tmp_path / 'uv-cache'}",
    ]
    for key, value in {
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheelhouse()),
        **(env or {}),
    }.items():
        args += ["--env", f"{key}={value}"]
    for key, value in inputs.items():
        args += ["--input", f"{key}={value}"]
    proc = subprocess.run(
        args,
        cwd=REPO,
        env=clean_env(PATH=path),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr, cache / "tool_cache"


def path_without_python(tmp_path: Path) -> str:
    """A PATH with every command of this one except python*: links in one directory."""
    bin_dir = tmp_path / "nopython"
    bin_dir.mkdir()
    for entry in os.environ["PATH"].split(os.pathsep):
        directory = Path(entry)
        if not directory.is_dir() or "pyenv" in entry:
            continue
        for tool in directory.iterdir():
            if tool.name.startswith("python") or (bin_dir / tool.name).exists():
                continue
            (bin_dir / tool.name).symlink_to(tool)
    return str(bin_dir)


@pytest.mark.act
@pytest.mark.slow
def test_act_no_python3_on_path_is_an_error_with_the_fix(tmp_path: Path) -> None:
    """No python3 on the runner: the prepare step fails with an ::error naming the fix."""
    rc, output, cache = act_run(
        tmp_path, path=path_without_python(tmp_path), inputs={"command": "hosts", "host": "h1"}
    )
    assert rc != 0
    assert re.search(
        r"::error title=sops-deploy: no Python::python3 is not on PATH; .*Fix: add a step "
        r"`uses: actions/setup-python`",
        output,
    ), output[-3000:]
    assert "Failure - Main Prepare Python" in output
    assert not cache.exists() or leftovers(cache) == []


@pytest.mark.act
@pytest.mark.slow
def test_act_python_without_pip_or_venv_is_an_error_with_the_debian_fix(
    tmp_path: Path, python_without: dict[str, Path]
) -> None:
    """Debian's python3 without python3-venv/pip: ::error with the apt-get fix, nothing left."""
    path = f"{python_without['no-pip-no-venv']}{os.pathsep}{path_without_python(tmp_path)}"
    rc, output, cache = act_run(tmp_path, path=path, inputs={"command": "hosts", "host": "h1"})
    assert rc != 0
    assert re.search(
        r"::error title=sops-deploy: Python cannot install packages::.*has no pip and its venv "
        r"module cannot create one \(ensurepip is missing\).*Fix: on Debian/Ubuntu run "
        r"`sudo apt-get install -y python3-venv`",
        output,
    ), output[-3000:]
    assert leftovers(cache) == []
    assert not list(cache.glob("sops-deploy/venv/*"))


@pytest.mark.act
@pytest.mark.slow
def test_act_no_network_is_an_error_with_the_fix(tmp_path: Path) -> None:
    """A package index that cannot be reached: ::error naming the index fix, nothing left."""
    import socket

    with socket.socket() as sock:  # a port nothing listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rc, output, cache = act_run(
        tmp_path,
        path=os.environ["PATH"],
        inputs={"command": "hosts", "host": "h1"},
        env={
            "PIP_NO_INDEX": "",
            "PIP_FIND_LINKS": "",
            "PIP_INDEX_URL": f"http://127.0.0.1:{port}/simple",
            "PIP_RETRIES": "0",
        },
    )
    assert rc != 0
    assert re.search(
        r"::error title=sops-deploy: cannot download Python packages::could not download uv "
        r"\(the installer\) from the package index .*Fix: the runner needs HTTPS access to "
        r"pypi\.org, or set PIP_INDEX_URL / UV_INDEX_URL",
        output,
    ), output[-3000:]
    assert leftovers(cache) == []
    assert not list(cache.glob("sops-deploy/uv/*"))


@pytest.mark.act
@pytest.mark.slow
def test_act_tools_bad_digest_reaches_the_run_page_and_installs_nothing(tmp_path: Path) -> None:
    """A tools mirror serving altered sops bytes: the tools step's ::error is printed (not
    captured away), and neither sops nor a partial download stays in the tool cache."""
    real = sops_bytes()
    server = ReleaseServer()
    digest = hashlib.sha256(real).hexdigest()
    server.add_sops("3.97.0", real + b"tampered", listed_digest=digest)
    server.start()
    try:
        rc, output, cache = act_run(
            tmp_path,
            path=os.environ["PATH"],
            inputs={
                "command": "validate",
                "tools-source": "release",
                "tools-mirror": server.url,
                "sops-version": "3.97.0",
                "sops-sha256": digest,
            },
        )
    finally:
        server.stop()
    assert rc != 0
    assert re.search(
        r"::error title=[^:]*::SHA-256 mismatch for http://127\.0\.0\.1:\d+/", output
    ), output[-3000:]
    assert "Failure - Main Install sops" in output
    assert leftovers(cache) == []
    assert not list(cache.glob("sops-deploy/sops/*/*/sops"))


def _site_packages(venv_python: str) -> Path:
    return next((Path(venv_python).parent.parent / "lib").glob("python3.*/site-packages"))


@pytest.mark.slow
def test_a_tampered_cached_venv_is_rebuilt_and_never_run(
    action_copy: Path, tmp_path: Path, uv_cache: Path
) -> None:
    """The cached venv is reused only when it holds exactly what this user built: a planted
    .pth (which would run at every start) or a changed file makes prepare warn, name the
    file and build a new one; a planted .pyc in the cache is never read (bytecode lives in
    this user's own pycache directory)."""
    python = pyenv_python("3.11").parent
    first, outputs = run_prepare(action_copy, tmp_path, python, uv_cache)
    assert first.returncode == 0, first.stdout[-3000:]
    records = list((tmp_path / "state/sops-deploy/setup").glob("venv-*.json"))
    assert len(records) == 1
    assert records[0].stat().st_mode & 0o077 == 0
    pycache = Path(outputs["pycache"])
    assert pycache.is_dir()
    assert pycache.stat().st_mode & 0o077 == 0
    site = _site_packages(outputs["python"])
    marker = tmp_path / "planted-code-ran"

    # unchanged: reused at once, nothing built
    again, _ = run_prepare(action_copy, tmp_path, python, uv_cache)
    assert "create the Python environment" not in again.stdout

    (site / "zz-planted.pth").write_text(f"import os; open({str(marker)!r}, 'w')\n")
    planted, outputs = run_prepare(action_copy, tmp_path, python, uv_cache)
    assert planted.returncode == 0, planted.stdout[-3000:]
    assert "cached Python environment not used" in planted.stdout
    assert "zz-planted.pth was added after it was built" in planted.stdout
    assert "create the Python environment" in planted.stdout
    assert not (site / "zz-planted.pth").exists()
    subprocess.run([outputs["python"], "-c", "pass"], check=True)
    assert not marker.exists()

    target = site / "yaml" / "__init__.py"
    target.write_text(target.read_text() + "\n# changed\n")
    changed, _ = run_prepare(action_copy, tmp_path, python, uv_cache)
    assert "yaml/__init__.py differs from what was built" in changed.stdout
    assert "# changed" not in target.read_text(), changed.stdout[-3000:]

    # a .pyc planted beside yaml/__init__.py, valid for its source: Python would run it …
    import importlib.util

    source = site / "yaml" / "__init__.py"
    code = compile(f"open({str(marker)!r}, 'w')", str(source), "exec")
    st = source.stat()
    from importlib._bootstrap_external import _code_to_timestamp_pyc  # type: ignore[attr-defined]

    pyc = Path(importlib.util.cache_from_source(str(source)))
    pyc.parent.mkdir(exist_ok=True)
    pyc.write_bytes(bytes(_code_to_timestamp_pyc(code, int(st.st_mtime), st.st_size)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    subprocess.run(
        [outputs["python"], "-c", "import yaml"],
        env={**env, "PYTHONPYCACHEPREFIX": outputs["pycache"]},
        check=False,
    )
    assert not marker.exists(), "with the action's PYTHONPYCACHEPREFIX it is never read"
    subprocess.run([outputs["python"], "-c", "import yaml"], env=env, check=False)
    assert marker.exists(), "the planted .pyc was valid: without the prefix it runs"
