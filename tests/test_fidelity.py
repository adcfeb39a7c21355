"""Fidelity: what each format's REAL reader loads is exactly what was encrypted.

Readers: Docker Compose's own parser (compose-go v2 `dotenv`, via tests/composeparse and
tests/readers.py), python-dotenv `dotenv_values` (interpolation on), and bash and dash
sourcing the file with `set -a`. Property tests are derandomized. The docker, systemd and
node formats are in test_readers.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sops_deploy import envfile
from sops_deploy.deploy import rollout
from sops_deploy.envfile import Entry, Secrets
from sops_deploy.envfile.render import DOTENV_VARIABLE, Unparseable
from sops_deploy.sops import runner
from tests import readers
from tests.support import AgeIdentity

EXAMPLES = 500
PROPERTY = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

HARD = [
    "$",
    "${X}",
    "$X",
    "$$",
    "${HOME:-d}",
    "\\",
    "\\n",
    "#",
    " #",
    "'",
    '"',
    "=",
    " ",
    "  ",
    "\t",
    "\n",
    "\r",
    "\\'",
    '\\"',
]
_text = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=10
)
VALUES = st.lists(st.one_of(_text, st.sampled_from(HARD)), max_size=8).map("".join)
KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
# The shell run needs PATH to find `env`; prefixed keys cannot collide with it.
SHELL_KEYS = st.from_regex(r"S_[A-Za-z0-9_]{0,16}", fullmatch=True)


def secrets_of(values: dict[str, str]) -> Secrets:
    return {k: Entry(k, v, "test.env", i + 1) for i, (k, v) in enumerate(values.items())}


# --- the real readers ------------------------------------------------------------------


@pytest.fixture(scope="session")
def compose_read() -> Iterator[Callable[[Path], dict[str, str]]]:
    """Docker Compose's parser (compose-go) as one long-lived process speaking JSON lines."""
    with readers.go_reader("composeparse") as read:

        def env(path: Path) -> dict[str, str]:
            answer = read(path)
            assert "error" not in answer, f"compose-go refused the file: {answer['error']}"
            found: dict[str, str] = answer.get("env") or {}
            return found

        yield env


def shell_read(shell: str, directory: Path) -> dict[str, str]:
    """`set -a; . ./.env` in `shell`, then the exported environment (NUL-separated)."""
    proc = subprocess.run(
        [shell, "-c", "set -a; . ./.env; exec env -0"],
        cwd=directory,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"{shell} failed to source the file: {proc.stderr!r}"
    out: dict[str, str] = {}
    for item in proc.stdout.split(b"\0"):
        if item:
            key, _, value = item.decode("utf-8").partition("=")
            out[key] = value
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fidelity")


def write_env(directory: Path, content: bytes) -> Path:
    path = directory / ".env"
    path.write_bytes(content)
    return path


# --- properties ------------------------------------------------------------------------


@pytest.mark.slow
@PROPERTY
@given(values=st.dictionaries(KEYS, VALUES, max_size=6))
def test_compose_reads_back_every_value(
    values: dict[str, str], compose_read: Callable[[Path], dict[str, str]], workdir: Path
) -> None:
    """compose: Docker Compose's own parser reads the rendered file back unchanged."""
    assert envfile.render_problems(secrets_of(values), "compose") == []
    content = envfile.render(values, "compose")
    assert compose_read(write_env(workdir, content)) == values
    assert envfile.MODELS["compose"](content.decode()) == values


@pytest.mark.slow
@PROPERTY
@given(values=st.dictionaries(KEYS, VALUES, max_size=6))
def test_dotenv_reads_back_every_value_it_accepts(values: dict[str, str], workdir: Path) -> None:
    """dotenv: python-dotenv (interpolation on) reads back every value; ${...} is refused."""
    refused = {p.key for p in envfile.render_problems(secrets_of(values), "dotenv")}
    assert refused == {k for k, v in values.items() if DOTENV_VARIABLE.search(v)}
    carried = {k: v for k, v in values.items() if k not in refused}
    content = envfile.render(carried, "dotenv")
    assert dict(dotenv_values(write_env(workdir, content))) == carried
    assert envfile.MODELS["dotenv"](content.decode()) == carried


@pytest.mark.slow
@PROPERTY
@given(values=st.dictionaries(SHELL_KEYS, VALUES, max_size=6))
def test_shell_reads_back_every_value(values: dict[str, str], workdir: Path) -> None:
    """shell: bash and dash, `set -a; . ./.env`, export exactly the values."""
    assert envfile.render_problems(secrets_of(values), "shell") == []
    content = envfile.render(values, "shell")
    write_env(workdir, content)
    for shell in ("bash", "dash"):
        env = shell_read(shell, workdir)
        assert {k: v for k, v in env.items() if k.startswith("S_")} == values, shell
    assert envfile.MODELS["shell"](content.decode()) == values


# --- refusals are real: each reader would change these values ---------------------------


def test_python_dotenv_really_interpolates_what_dotenv_refuses(workdir: Path) -> None:
    """The refused ${...} values really change under python-dotenv, in any quoting."""
    for line in ("A='${HOME}'", 'A="${HOME}"', "A=${HOME}"):
        read = dotenv_values(write_env(workdir, (line + "\n").encode()))
        assert read["A"] != "${HOME}"
    problems = envfile.render_problems(secrets_of({"A": "x${HOME}y"}), "dotenv")
    assert [(p.key, p.rule) for p in problems] == [("A", "unrepresentable")]


def test_naive_compose_quoting_would_lose_values(
    compose_read: Callable[[Path], dict[str, str]], workdir: Path
) -> None:
    """The traps the compose renderer avoids are real: $ interpolates, ' # ' comments."""
    read = compose_read(write_env(workdir, b"A=pa$1wor$D\nB=x #y\nC=\"$X\"\nD='$X'\n"))
    assert read["A"] != "pa$1wor$D"
    assert read["B"] == "x"
    assert read["C"] == "CANARY_X"
    assert read["D"] == "$X"  # single quotes are verbatim in compose-go


@pytest.mark.parametrize("fmt", ["compose", "dotenv", "shell", "docker", "systemd", "node"])
def test_nul_is_refused_naming_the_key(fmt: str) -> None:
    """A NUL character cannot be carried by any text format: a problem names the key."""
    problems = envfile.render_problems(secrets_of({"NUL_KEY": "ab\x00cd"}), fmt)
    assert [(p.key, p.rule) for p in problems] == [("NUL_KEY", "unrepresentable")]
    assert "\x00" not in str(problems[0])


def test_shell_refuses_names_bash_will_not_set(workdir: Path) -> None:
    """bash aborts on read-only names like UID: the shell format refuses them up front."""
    content = b"UID='1234'\n"
    proc = subprocess.run(
        ["bash", "-c", "set -a; . ./.env; echo sourced"],
        cwd=write_env(workdir, content).parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "readonly" in proc.stderr
    problems = envfile.render_problems(secrets_of({"UID": "1234"}), "shell")
    assert [(p.key, p.rule) for p in problems] == [("UID", "unrepresentable")]


# --- the whole path through sops --------------------------------------------------------

ROUND_TRIP = """\
# a comment line
QUOTED_HASH="value # not a comment"
UNQUOTED_COMMENT=value-before # a comment
SINGLE='single $NOT_EXPANDED and "double" inside'
DOLLARS=pa$1wor$D$$end
ESCAPED_NEWLINE="line one\\nline two"
ESCAPED_QUOTE="say \\"hi\\" and \\\\ back"
LITERAL_BACKSLASH_N=raw\\nstays
export EXPORTED=exported-value
EQUALS=a=b=c
EMPTY=
"""


@pytest.mark.parametrize(
    ("fmt", "extra"),
    [
        pytest.param("compose", "BRACED='${HOME} and ${X:-d}'\n", id="compose"),
        pytest.param("dotenv", "", id="dotenv"),
        pytest.param("shell", "BRACED='${HOME} and ${X:-d}'\n", id="shell"),
    ],
)
def test_sops_round_trip_equals_python_dotenv_of_the_plaintext(
    fmt: str,
    extra: str,
    encrypt: Callable[..., Path],
    sops_bin: str,
    age_id: AgeIdentity,
    compose_read: Callable[[Path], dict[str, str]],
    workdir: Path,
) -> None:
    """plaintext → sops encrypt → decrypt → parse → render → real reader: the plaintext's values."""
    plaintext = ROUND_TRIP + extra
    expected = dict(dotenv_values(stream=io.StringIO(plaintext), interpolate=False))
    enc = runner.inspect(str(encrypt(plaintext)))
    decrypted = runner.decrypt(sops_bin, enc, runner.AgeKeySource(file=str(age_id.path)))
    entries, problems = rollout.parse_plaintext(enc, decrypted)
    assert [p for p in problems if p.severity == "error"] == []
    secrets = envfile.merge([entries])
    assert envfile.render_problems(secrets, fmt) == []
    content = envfile.render({k: e.value for k, e in secrets.items()}, fmt)
    path = write_env(workdir, content)
    if fmt == "compose":
        assert compose_read(path) == expected
    elif fmt == "dotenv":
        assert dict(dotenv_values(path)) == expected
    else:
        for shell in ("bash", "dash"):
            env = shell_read(shell, workdir)
            assert {k: env.get(k) for k in expected} == expected, shell


# --- the project's model of compose-go agrees with compose-go on any input --------------

_RAW_CHUNKS = st.sampled_from([*HARD, "'", '"', "\\$", "\\t", "\\0101", "\\c", "x", " ", "é"])
_RAW_VALUE = st.lists(st.one_of(_RAW_CHUNKS, _text), max_size=6).map("".join)
_RAW_LINE = st.tuples(st.sampled_from(["", "export ", "  "]), KEYS, _RAW_VALUE).map(
    lambda t: f"{t[0]}{t[1]}={t[2]}"
)


def _compose_try(
    compose_read: Callable[[Path], dict[str, str]], path: Path
) -> dict[str, str] | None:
    try:
        return compose_read(path)
    except AssertionError:
        return None  # compose-go refused the file; the model is only used on valid files


@pytest.mark.slow
@settings(PROPERTY, max_examples=300)
@given(lines=st.lists(_RAW_LINE, max_size=5))
def test_compose_model_matches_compose_go(
    lines: list[str], compose_read: Callable[[Path], dict[str, str]], workdir: Path
) -> None:
    """On arbitrary dotenv text the model refuses what compose-go refuses, and otherwise
    reads the same keys and values.

    The model marks a value it cannot know (one compose-go would fill from the reader's
    environment) as None; every other value must be equal.
    """
    text = "\n".join(lines) + "\n"
    real = _compose_try(compose_read, write_env(workdir, text.encode()))
    event("compose-go refused" if real is None else "compared")
    if real is None:
        with pytest.raises(Unparseable):
            envfile.MODELS["compose"](text)
        return
    model = envfile.MODELS["compose"](text)
    known = {k: v for k, v in model.items() if v is not None}
    assert set(known) <= set(real) <= set(model)
    assert known == {k: real[k] for k in known}


# --- older python-dotenv (and Compose v1's 0.21) read backslash values the same -----------

OLD_DOTENV = ("0.21.1", "1.2.2")


def _old_python_dotenv(version: str) -> Path:
    """A throwaway venv with python-dotenv `version`, made once in the user cache."""
    venv = readers.cache_root() / "test-tools" / f"python-dotenv-{version}"
    python = venv / "bin" / "python"
    if not python.exists():
        tmp = venv.with_name(f"{venv.name}.tmp{os.getpid()}")
        subprocess.run([sys.executable, "-m", "venv", str(tmp)], check=True)
        subprocess.run(
            [str(tmp / "bin" / "python"), "-m", "pip", "install", "-q",
             f"python-dotenv=={version}"],
            check=True,
        )  # fmt: skip
        shutil.rmtree(venv, ignore_errors=True)
        os.replace(tmp, venv)
        # the venv's scripts name their own directory: recreate it in place
        subprocess.run([sys.executable, "-m", "venv", "--upgrade", str(venv)], check=True)
    return python


@pytest.mark.slow
@pytest.mark.parametrize("version", OLD_DOTENV)
@pytest.mark.parametrize("fmt", ["dotenv", "compose"])
def test_old_python_dotenv_reads_backslash_values_exactly(
    version: str, fmt: str, workdir: Path
) -> None:
    """A value ending in a backslash is written bare, so python-dotenv before 1.2.3 (which
    swallows the lines after a quoted one) reads it and every later key exactly."""
    values = {"A": "ends\\", "B": "\\", "C": "C:\\dir\\", "D": "a\\nb", "E": "after 'q'"}
    content = envfile.render(values, fmt)
    code = "import json,sys,dotenv; print(json.dumps(dotenv.dotenv_values(sys.argv[1])))"
    proc = subprocess.run(
        [str(_old_python_dotenv(version)), "-c", code, str(write_env(workdir, content))],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout) == values
