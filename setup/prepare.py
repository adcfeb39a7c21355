"""The action's "Prepare Python" step: build once, then reuse, the venv that runs sops-deploy.

action.yml finds `python3` and checks its version (any Python can run that check); this
script, run by that python3 (3.10+, standard library only, `-S`: site-packages are
looked at only to find pip), owns everything after:

- the venv key: the Python (version, build, real path), requirements/action.txt and
  uv.txt, pyproject.toml and the package sources. A venv with that key that finished
  building (`.complete`) is reused at once: every later job and matrix leg on the runner.
- a cold build: uv (from its hash-locked wheel, requirements/uv.txt, installed with the
  runner's pip) creates the venv and installs requirements/action.txt (`--require-hashes`,
  wheels only, one universal lock for every supported Python), then the package itself.
  Everything is built in a `.build-*` / `.uv-*` directory of the tool cache and renamed into
  place only when complete; a failure removes it, so nothing is left behind.
- failures: one `::error` with what went wrong and the fix (no pip or venv, no network,
  a digest mismatch), the tools' own output kept in a collapsed group above it.

Optional extras: `aws-sync`, or an `aws-sm://` source in the `file` input or the config
file, needs boto3; that venv also installs requirements/aws.txt (hash-locked, constrained by
action.txt) and has its own key (`-aws`), so a deploy's venv never carries it.

Package index settings: `UV_*` variables are uv's own; the pip ones the runner may carry
(PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX) are passed on to uv too.
Writes `python=<venv>/bin/python` to $GITHUB_OUTPUT.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cachecheck  # beside this script (sys.path[0]); standard library only

INDEX_FIX = (
    "the runner needs HTTPS access to pypi.org, or set PIP_INDEX_URL / UV_INDEX_URL "
    "(or PIP_FIND_LINKS) in the job's env: to a mirror that serves the locked files; "
    "rerun the job if it was a passing outage"
)
DIGEST_FIX = (
    "do not use that index or mirror until you know why it serves other bytes than "
    "the lock pins (pypi.org files never change); if you edited requirements/*.in, "
    "regenerate the locks with `make lock`"
)
NO_PIP_FIX = (
    "on Debian/Ubuntu run `sudo apt-get install -y python3-venv` (or python3-pip) in an "
    "earlier step, or add `uses: actions/setup-python` with `python-version: '3.12'` "
    "before this action"
)
NETWORK_HINTS = (
    "failed to fetch",
    "error sending request",
    "connection refused",
    "could not connect",
    "dns error",
    "failed to lookup",
    "timed out",
    "newconnectionerror",
    "max retries exceeded",
    "no matching distribution",
    "could not find a version",
    "not found in the package registry",
    "because there is no version",
    "network",
)


class SetupError(Exception):
    """A failure to report as one ::error: a title, what happened, and the fix."""

    def __init__(self, title: str, message: str, fix: str) -> None:
        super().__init__(message)
        self.title, self.message, self.fix = title, message, fix


def escape(text: str) -> str:
    """Workflow-command data: one line, `%`, CR and LF escaped."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def tool_cache() -> Path:
    root = os.environ.get("RUNNER_TOOL_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(root or Path.home() / ".cache") / "sops-deploy"


def extras(env: dict[str, str] | os._Environ[str], action_cwd: Path) -> tuple[str, ...]:
    """The optional extras this run needs: `aws` for aws-sync or an aws-sm:// source."""
    if env.get("SD_COMMAND", "") == "aws-sync" or "aws-sm://" in env.get("SD_FILE", ""):
        return ("aws",)
    config = action_cwd / (env.get("SD_CONFIG") or "secrets/sops-deploy.yaml")
    with contextlib.suppress(OSError, UnicodeDecodeError):
        if "aws-sm://" in config.read_text(encoding="utf-8"):
            return ("aws",)
    return ()


def venv_name(action: Path, extra: tuple[str, ...] = ()) -> str:
    """`<version>-<key>`: the package version and a digest of everything the venv holds."""
    init = (action / "src" / "sops_deploy" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "(.*)"', init, re.M)
    digest = hashlib.sha256()
    for part in (sys.version, os.path.realpath(sys.executable), sys.platform):
        digest.update(part.encode() + b"\0")
    files = [action / "requirements" / "action.txt", action / "requirements" / "uv.txt"]
    files += [action / "requirements" / f"{name}.txt" for name in extra]
    files += [action / "pyproject.toml", *sorted((action / "src").rglob("*.py"))]
    for path in files:
        digest.update(path.relative_to(action).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    suffix = "".join(f"-{name}" for name in extra)
    return f"{match.group(1) if match else 'dev'}-{digest.hexdigest()[:16]}{suffix}"


def is_complete(venv: Path) -> bool:
    python = venv / "bin" / "python"
    return (venv / ".complete").is_file() and os.path.exists(os.path.realpath(python))


def run(argv: list[str], env: dict[str, str] | None = None) -> str:
    """Run a step; its output goes to the log (inside the group), and is returned."""
    proc = subprocess.run(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    sys.stdout.write(proc.stdout)
    sys.stdout.flush()
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, argv, proc.stdout)
    return proc.stdout


def last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-count:])


def download_error(what: str, output: str, lock: str) -> SetupError:
    """Classify an installer's failure: a digest mismatch, no network, or anything else."""
    lowered = output.lower()
    if "hash mismatch" in lowered or "do not match the hashes" in lowered:
        # uv: Hash mismatch for `name==version`; pip: "    name==version from URL:"
        names = re.findall(r"Hash mismatch for `([^`]+)`", output)
        names += re.findall(r"^\s+(\S+==\S+) from \S+", output, re.M)
        return SetupError(
            "package digest mismatch",
            f"the file downloaded for {', '.join(dict.fromkeys(names)) or what} does not "
            f"match its SHA-256 in {lock}; nothing was installed",
            DIGEST_FIX,
        )
    if any(hint in lowered for hint in NETWORK_HINTS):
        return SetupError(
            "cannot download Python packages",
            f"could not download {what} from the package index ({last_lines(output)})",
            INDEX_FIX,
        )
    return SetupError(
        "cannot install Python packages",
        f"installing {what} failed ({last_lines(output)})",
        "see the log group above for the installer's output; " + INDEX_FIX,
    )


def pip_command(staged: Path) -> list[str]:
    """The runner's pip, or one from a bootstrap venv (ensurepip) when it has none."""
    import site  # this script runs with -S (a faster warm start): find site-packages now

    site.main()
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    boot = staged / "boot"
    try:
        run([sys.executable, "-m", "venv", str(boot)])
    except subprocess.CalledProcessError as exc:
        raise SetupError(
            "Python cannot install packages",
            f"{sys.executable} (Python {sys.version.split()[0]}) has no pip and its venv "
            f"module cannot create one (ensurepip is missing): {last_lines(exc.output, 2)}",
            NO_PIP_FIX,
        ) from None
    return [str(boot / "bin" / "python"), "-m", "pip"]


def ensure_uv(action: Path, cache: Path) -> Path:
    """uv from requirements/uv.txt (pip --require-hashes), cached by the lock's digest."""
    lock = action / "requirements" / "uv.txt"
    home = cache / "uv" / hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    uv = home / "bin" / "uv"
    records = cachecheck.state_dir(os.environ) / "setup"
    if uv.is_file():
        why = cachecheck.problem(home, f"uv-{home.name}", records)
        if why is None:
            return uv
        print(f"::warning title=sops-deploy: cached uv not used::{escape(f'{home}: {why}')}")
        discard(home)
    home.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".uv-", dir=home.parent))
    try:
        pip = pip_command(staged)
        env = {**os.environ, "PIP_REQUIRE_VIRTUALENV": "0", "PIP_USER": "0"}
        env["PIP_ROOT_USER_ACTION"] = "ignore"  # an old pip ignores an unknown variable
        argv = [*pip, "install", "--quiet", "--disable-pip-version-check", "--no-input"]
        argv += ["--no-deps", "--only-binary=:all:", "--require-hashes", "--no-compile"]
        try:
            run([*argv, "--target", str(staged / "target"), "-r", str(lock)], env)
        except subprocess.CalledProcessError as exc:
            raise download_error("uv (the installer)", exc.output, "requirements/uv.txt") from None
        os.rename(staged / "target", staged / "home")
        try:
            os.rename(staged / "home", home)
        except OSError:  # another job installed it first: use this job's own copy
            home = staged / "home"
            staged = Path(tempfile.mkdtemp(prefix=".uv-", dir=home.parent.parent))
        cachecheck.record(home, f"uv-{home.name}", records)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return home / "bin" / "uv"


def discard(path: Path) -> None:
    """Move a cached tree out of the way (atomically), then remove it."""
    aside = Path(tempfile.mkdtemp(prefix=".stale-", dir=path.parent))
    with contextlib.suppress(OSError):
        os.rename(path, aside / path.name)
    shutil.rmtree(aside, ignore_errors=True)


def index_flags(env: dict[str, str]) -> list[str]:
    """The runner's pip index settings as uv flags (uv reads only its own UV_* names)."""
    flags: list[str] = []
    if env.get("PIP_INDEX_URL") and not env.get("UV_INDEX_URL"):
        flags += ["--index-url", env["PIP_INDEX_URL"]]
    if env.get("PIP_EXTRA_INDEX_URL") and not env.get("UV_EXTRA_INDEX_URL"):
        for url in env["PIP_EXTRA_INDEX_URL"].split():
            flags += ["--extra-index-url", url]
    if env.get("PIP_FIND_LINKS") and not env.get("UV_FIND_LINKS"):
        for place in env["PIP_FIND_LINKS"].split():
            flags += ["--find-links", place]
    if env.get("PIP_NO_INDEX", "").lower() in ("1", "true", "yes", "on"):
        flags.append("--no-index")
    return flags


def build(action: Path, uv: Path, staged: Path, extra: tuple[str, ...] = ()) -> None:
    """Create the venv in `staged` and install the lock, then the package, into it."""
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1"}
    python = str(staged / "bin" / "python")
    run([str(uv), "venv", "--quiet", "--relocatable", "--python", sys.executable, str(staged)], env)
    lock = action / "requirements" / "action.txt"
    # copies, not uv's default hardlinks into its cache: a change to the venv must not
    # reach the cache the next build installs from (and the venv's record stays its own)
    install = [str(uv), "pip", "install", "--link-mode", "copy", "--python", python]
    locked = [*index_flags(env), "--require-hashes", "--only-binary", ":all:", "-r", str(lock)]
    for name in extra:
        locked += ["-r", str(action / "requirements" / f"{name}.txt")]
    try:
        run([*install, *locked], env)
    except subprocess.CalledProcessError as exc:
        raise download_error(
            "the locked requirements", exc.output, "requirements/action.txt"
        ) from None
    run([*install, "--no-deps", "--no-build-isolation", "--no-index", str(action)], env)


def main() -> int:
    action = Path(os.environ.get("GITHUB_ACTION_PATH") or Path(__file__).resolve().parent.parent)
    cache = tool_cache()
    extra = extras(os.environ, Path.cwd())
    venv = cache / "venv" / venv_name(action, extra)
    state = cachecheck.state_dir(os.environ)
    if is_complete(venv):
        why = cachecheck.problem(venv, f"venv-{venv.name}", state / "setup")
        if why is not None:
            print(
                "::warning title=sops-deploy: cached Python environment not used::"
                f"{escape(f'{venv}: {why}')}; building a new one"
            )
            discard(venv)
    if not is_complete(venv):
        built = create(action, cache, venv, state / "setup", extra)
        if built is None:
            return 1
        venv = built
    if sys.version_info[:2] > (3, 13):
        print(
            f"::warning title=sops-deploy: untested Python::Python {sys.version.split()[0]} is "
            "newer than sops-deploy is tested on (3.10-3.13); if it misbehaves, use "
            "actions/setup-python with python-version: '3.13'"
        )
    # Bytecode in this user's own directory, never read from (or written to) the cache.
    pycache = cachecheck.private_dir(state / "pycache")
    output = os.environ.get("GITHUB_OUTPUT")
    lines = f"python={venv / 'bin' / 'python'}\npycache={pycache}\n"
    if output:
        with open(output, "a", encoding="utf-8") as fh:
            fh.write(lines)
    else:
        sys.stdout.write(lines)
    return 0


def create(
    action: Path, cache: Path, venv: Path, records: Path, extra: tuple[str, ...]
) -> Path | None:
    """Build the venv, record what it holds; its path (None: failed, ::error printed)."""
    print(f"::group::sops-deploy: create the Python environment ({venv.name})", flush=True)
    staged: Path | None = None
    try:
        uv = ensure_uv(action, cache)
        venv.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=".build-", dir=venv.parent))
        build(action, uv, staged, extra)
        (staged / ".complete").touch()
        if venv.exists() and not is_complete(venv):
            shutil.rmtree(venv)
        try:
            os.rename(staged, venv)  # atomic: a job that built it first wins
        except OSError:  # ... and this job uses its own build, which it can vouch for
            venv, staged = staged, None
        cachecheck.record(venv, f"venv-{venv.name}", records)
    except SetupError as exc:
        print("::endgroup::")
        print(f"::error title=sops-deploy: {exc.title}::{escape(exc.message)}. Fix: {exc.fix}")
        return None
    except subprocess.CalledProcessError as exc:
        print("::endgroup::")
        print(
            "::error title=sops-deploy: cannot create the Python environment::"
            f"{escape(' '.join(exc.cmd[:3]))} … failed: {escape(last_lines(exc.output))}. "
            "Fix: see the log group above; report it with that output if it persists"
        )
        return None
    finally:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
    print("::endgroup::")
    return venv


if __name__ == "__main__":
    sys.exit(main())
