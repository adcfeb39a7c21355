"""Fidelity of the docker, systemd and node formats against their REAL readers.

docker/cli's `pkg/kvfile` (built with Go, tests/kvfileparse), systemd's `load_env_file`
from Debian's libsystemd-shared through ctypes followed by PID 1's validity filter, and
Node's npm `dotenv` plus `util.parseEnv` of the installed Node (tests/nodeparse). Each
property: a value the format accepts reads back exactly; a value it refuses is named by
key; and on arbitrary text the project's model of the reader (used by `check`/`diff`)
agrees with the reader. Derandomized, 500 examples each.
"""

from __future__ import annotations

import ctypes
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sops_deploy import envfile
from sops_deploy.envfile import Entry, Secrets, node
from sops_deploy.envfile.common import Unparseable
from tests import readers
from tests.support import REPO

PROPERTY = settings(
    max_examples=500,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HARD = [
    "$", "${X}", "$X", "$$", "\\", "\\n", "\\r", "#", " #", "'", '"', "`", "=", " ", "\t",
    "\n", "\r", "\\'", '\\"', "\\`", "\\$", ";", "\x01", "\x7f", "\ufdd0", "\uffff", "\u2028",
    "\xa0", "\ufeff", "é",
]  # fmt: skip
_text = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=10
)
VALUES = st.lists(st.one_of(_text, st.sampled_from(HARD)), max_size=8).map("".join)
KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
Read = Callable[[Path], dict[str, Any]]


def secrets_of(values: dict[str, str]) -> Secrets:
    return {k: Entry(k, v, "test.env", i + 1) for i, (k, v) in enumerate(values.items())}


def refused_and_carried(values: dict[str, str], fmt: str) -> tuple[set[str], dict[str, str]]:
    problems = envfile.render_problems(secrets_of(values), fmt)
    assert {p.rule for p in problems} <= {"unrepresentable"}
    refused = {p.key for p in problems if p.key}
    return refused, {k: v for k, v in values.items() if k not in refused}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("readers")


def write_env(directory: Path, content: bytes) -> Path:
    path = directory / ".env"
    path.write_bytes(content)
    return path


@pytest.fixture(scope="session")
def kvfile_read() -> Iterator[Read]:
    with readers.go_reader("kvfileparse") as read:
        yield read


@pytest.fixture(scope="session")
def systemd_lib() -> ctypes.CDLL:
    return readers.systemd_library()


@pytest.fixture(scope="session")
def node_read() -> Iterator[Read]:
    with readers.node_reader() as read:
        yield read


# --- docker ------------------------------------------------------------------------------


@pytest.mark.slow
@PROPERTY
@given(values=st.dictionaries(KEYS, VALUES, max_size=6))
def test_docker_reads_back_every_value_it_accepts(
    values: dict[str, str], kvfile_read: Read, workdir: Path
) -> None:
    """docker: docker/cli's kvfile reads back every accepted value; a line break is refused."""
    refused, carried = refused_and_carried(values, "docker")
    assert refused == {k for k, v in values.items() if "\n" in v or v.endswith("\r")}
    content = envfile.render(carried, "docker")
    assert kvfile_read(write_env(workdir, content)) == {"env": carried} if carried else True
    assert envfile.MODELS["docker"](content.decode()) == carried


_DOCKER_LINE = st.tuples(
    st.sampled_from(["", " ", "\t", "#", "\ufeff", "\xa0"]),
    st.one_of(KEYS, st.sampled_from(["", "A B", "A\tB", "X", "HOME"])),
    st.sampled_from(["=", "", "=="]),
    VALUES,
).map("".join)


@pytest.mark.slow
@PROPERTY
@given(lines=st.lists(_DOCKER_LINE, max_size=5), end=st.sampled_from(["", "\n", "\r\n"]))
def test_docker_model_matches_kvfile(
    lines: list[str], end: str, kvfile_read: Read, workdir: Path
) -> None:
    """On arbitrary text the model refuses what kvfile refuses and otherwise reads the same."""
    text = "\n".join(lines) + end
    real = kvfile_read(write_env(workdir, text.encode()))
    _compare(envfile.MODELS["docker"], text, real)


def _compare(
    model: Callable[[str], dict[str, str | None]], text: str, real: dict[str, Any]
) -> None:
    event("refused" if "error" in real else "compared")
    if "error" in real:
        with pytest.raises(Unparseable):
            model(text)
        return
    got = model(text)
    known = {k: v for k, v in got.items() if v is not None}
    env = real.get("env") or {}
    assert set(known) <= set(env) <= set(got)
    assert known == {k: env[k] for k in known}


# --- systemd -----------------------------------------------------------------------------


def _systemd_refuses(value: str) -> bool:
    return any(0xFDD0 <= ord(c) <= 0xFDEF or (ord(c) & 0xFFFE) == 0xFFFE for c in value)


@pytest.mark.slow
@PROPERTY
@given(values=st.dictionaries(KEYS, VALUES, max_size=6))
def test_systemd_reads_back_every_value_it_accepts(
    values: dict[str, str], systemd_lib: ctypes.CDLL, workdir: Path
) -> None:
    """systemd: load_env_file + PID 1's filter read back every accepted value exactly."""
    refused, carried = refused_and_carried(values, "systemd")
    assert refused == {k for k, v in values.items() if _systemd_refuses(v)}
    content = envfile.render(carried, "systemd")
    assert readers.systemd_read(systemd_lib, write_env(workdir, content)) == {"env": carried}
    assert envfile.MODELS["systemd"](content.decode()) == carried


_SD_CHUNKS = st.sampled_from(
    [*HARD, "'", '"', "\\", "\\\n", "#", ";", " ", "\n", "\r", "=", "A", "B_1", "1A", "x y"]
)
_SD_LINE = st.tuples(
    st.sampled_from(["", " ", "#", ";", "export "]),
    st.one_of(KEYS, st.sampled_from(["1A", "A B", "A-B", ""])),
    st.sampled_from(["=", " = ", "", "=="]),
    st.sampled_from(["", "'", '"']),
    st.lists(st.one_of(_SD_CHUNKS, _text), max_size=6).map("".join),
    st.sampled_from(["", "'", '"', "\\"]),
).map("".join)
_SD_TEXT = st.one_of(
    st.lists(_SD_LINE, max_size=5).map("\n".join),
    st.lists(st.one_of(_SD_CHUNKS, _text), max_size=12).map("".join),
)


@pytest.mark.slow
@PROPERTY
@given(text=_SD_TEXT)
def test_systemd_model_matches_load_env_file(
    text: str, systemd_lib: ctypes.CDLL, workdir: Path
) -> None:
    """On arbitrary text the model keeps exactly what PID 1 would put in the environment."""
    real = readers.systemd_read(systemd_lib, write_env(workdir, text.encode()))
    _compare(envfile.MODELS["systemd"], text, real)


def test_systemd_really_fails_on_what_the_format_refuses(
    systemd_lib: ctypes.CDLL, workdir: Path
) -> None:
    """A Unicode non-character makes load_env_file fail the whole file: refused by key."""
    path = write_env(workdir, 'A="x\ufdd0y"\nC="ok"\n'.encode())
    assert "error" in readers.systemd_read(systemd_lib, path)
    problems = envfile.render_problems(secrets_of({"A": "x\ufdd0y", "C": "ok"}), "systemd")
    assert [(p.key, p.rule) for p in problems] == [("A", "unrepresentable")]


# --- node --------------------------------------------------------------------------------


def _node_changes(value: str, read: Read, workdir: Path) -> bool:
    """True if Node's readers (either) change `value` in every quoting the format could use."""
    for q in ("'", '"', "`"):
        answer = read(write_env(workdir, f"A={q}{value}{q}\nB='b'\n".encode()))
        if answer["dotenv"] == answer["parseEnv"] == {"A": value, "B": "b"}:
            return False
    return True


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({"B": "\\", "A": "#"}, id="backslash-then-hash"),
        pytest.param({"B": "x\\", "A": "'q'", "C": "`"}, id="backslash-before-quotes"),
        pytest.param({"B": "a\\\\", "A": "z"}, id="two-backslashes"),
    ],
)
def test_node_carries_a_value_ending_in_a_backslash(
    values: dict[str, str], node_read: Read, workdir: Path
) -> None:
    """A trailing backslash goes unquoted, so the next line's quote is not swallowed (found
    by the property below: `B='\\'` then `A='#'` read as one value)."""
    assert refused_and_carried(values, "node") == (set(), values)
    answer = node_read(write_env(workdir, envfile.render(values, "node")))
    assert answer.get("dotenv") == answer.get("parseEnv") == values


def test_node_refuses_a_trailing_backslash_that_needs_quotes() -> None:
    """The nearest refusal: a trailing backslash in a value that must be quoted (`#`)."""
    refused, _ = refused_and_carried({"B": "a #\\", "A": "'q'"}, "node")
    assert refused == {"B"}


@pytest.mark.slow
@PROPERTY
@given(values=st.dictionaries(KEYS, VALUES, max_size=6))
def test_node_reads_back_every_value_it_accepts(
    values: dict[str, str], node_read: Read, workdir: Path
) -> None:
    """node: npm dotenv and util.parseEnv both read back every accepted value exactly."""
    refused, carried = refused_and_carried(values, "node")
    assert all(
        node.ends_in_escaping_backslash(values[k]) or _node_changes(values[k], node_read, workdir)
        for k in refused
    )
    content = envfile.render(carried, "node")
    answer = node_read(write_env(workdir, content))
    assert answer.get("dotenv") == carried
    assert answer.get("parseEnv") == carried
    assert envfile.MODELS["node"](content.decode()) == carried


_NODE_CHUNKS = st.sampled_from(
    [*HARD, "'", '"', "`", "#", " #", "export ", ": ", "=", "\n", "\r\n", "A", "B.c-d", "x"]
)
_NODE_TEXT = st.lists(st.one_of(_NODE_CHUNKS, _text), max_size=12).map("".join)


@pytest.mark.slow
@PROPERTY
@given(text=_NODE_TEXT)
def test_node_model_matches_npm_dotenv(text: str, node_read: Read, workdir: Path) -> None:
    """On arbitrary text the model reads exactly what npm dotenv's `parse` reads."""
    answer = node_read(write_env(workdir, text.encode()))
    assert envfile.MODELS["node"](text) == answer["dotenv"]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        pytest.param("a\\nb'\"`", "all three quotes", id="three-quotes"),
        pytest.param("a\rb", "a CR", id="cr"),
    ],
)
def test_node_refusals_are_real(value: str, why: str, node_read: Read, workdir: Path) -> None:
    """Each value the node format refuses is changed by one of Node's readers in any quoting."""
    assert _node_changes(value, node_read, workdir), why
    problems = envfile.render_problems(secrets_of({"A": value}), "node")
    assert [(p.key, p.rule) for p in problems] == [("A", "unrepresentable")]


# --- shell: the drift model against bash -------------------------------------------------

_SH_CHUNKS = st.sampled_from(
    ["$X", "${X}", "$(echo hi)", "`echo hi`", "~", ":~", "'", '"', "\\", "\\\n", "\\$", " ",
     "#", "a", "é", "'a b'", '"a $X"', '"a \\" b"', "=", "*", "?"]
)  # fmt: skip
_SH_LINE = st.tuples(
    st.sampled_from(["", "export ", "  "]),
    st.from_regex(r"S_[A-Z0-9_]{0,6}", fullmatch=True),
    st.lists(st.one_of(_SH_CHUNKS, _text.filter(lambda t: "\x00" not in t)), max_size=5),
).map(lambda t: f"{t[0]}{t[1]}={''.join(t[2])}")


@pytest.mark.slow
@settings(PROPERTY, max_examples=300)
@given(lines=st.lists(_SH_LINE, max_size=4))
def test_shell_model_matches_bash(lines: list[str], workdir: Path) -> None:
    """Where the model knows a value (not None, file not refused), bash reads the same."""
    text = "\n".join(lines) + "\n"
    try:
        model = envfile.MODELS["shell"](text)
    except Unparseable:
        event("model refused")
        return
    write_env(workdir, text.encode())
    proc = subprocess.run(
        ["bash", "-c", "set -a; . ./.env; exec /usr/bin/env -0"],
        cwd=workdir,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "X": "CANARY_X", "HOME": "/canary"},
        check=False,
    )
    env = dict(
        item.decode("utf-8", "replace").partition("=")[::2]
        for item in proc.stdout.split(b"\0")
        if item
    )
    known = {k: v for k, v in model.items() if v is not None}
    event("compared" if known else "nothing known")
    assert known == {k: env.get(k) for k in known}


# --- the README's reader matrix is what the script measures ------------------------------


@pytest.mark.slow
def test_readme_reader_matrix_rows_match_a_fresh_measurement() -> None:
    """scripts/reader_matrix.py --core re-measures the always-present readers: their rows
    (and the refused counts) in the README are exactly what it finds now."""
    from scripts import reader_matrix

    refused, table = reader_matrix.measure(core=True)
    fresh = reader_matrix.rows(
        reader_matrix.MARK_START + reader_matrix.markdown(refused, table) + reader_matrix.MARK_END
    )
    written = reader_matrix.rows((REPO / "README.md").read_text())
    assert len(fresh) == len(table) + 2  # the header and the refused row too
    for reader, line in fresh.items():
        assert written.get(reader) == line, reader
