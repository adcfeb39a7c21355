"""Nothing valid is refused, and what is carried arrives exactly (issue 23, property tests).

One property per format, through the product's own path (`build_plan`: parse, lint,
schema, render for the target, re-check) and then the format's REAL reader
(tests/readers.py; bash and dash for `shell`). Keys are drawn from each reader's own key
grammar, values from all of Unicode with extra weight on `=`, `#`, quotes, backslashes,
`$`, `${…}`, line breaks and blanks at either end; many keys per file, so the reader runs
once per example. For each generated file the plan is either valid and read back exactly,
or refused (exit 4) by problems that each name a key — and every refusal is of a class
the README's formats section (docs/fidelity-rules.md) lists for that format; after
leaving the refused keys out, the rest must deploy exactly. Fixed profile: derandomized,
`EXAMPLES` examples each, no deadline. The values come from a sops json/yaml source
(decrypted to JSON), which has no interpolation; `${…}` in a dotenv source is the subject
of tests/test_interpolate.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sops_deploy.deploy import rollout as deploy
from sops_deploy.envfile import KEY_RE, node
from sops_deploy.envfile.fragments import looks_like_value
from sops_deploy.envfile.render import DOTENV_VARIABLE
from sops_deploy.envfile.shell import RESERVED
from sops_deploy.errors import Problem, ValidationError
from sops_deploy.inputs.settings import Settings
from sops_deploy.plan.targets import SAFE_NAME
from sops_deploy.sops import runner as sops
from tests import readers
from tests.support import CliResult

EXAMPLES = 100
PROFILE = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

HARD = [
    "=", "==", "=lead", "#", " #", "'", '"', "`", "\\", "\\n", "\\\\", "$", "$$", "${",
    "${Q1}", "${Q1:-d}", "$Q1", "}", "\n", "\r\n", "\r", " ", "\t", "  x  ", "\x01", "é",
    "\u2028", "\ufeff", "\ufdd0",
]  # fmt: skip
_UNICODE = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8
)
VALUES = st.lists(
    st.one_of(_UNICODE, st.sampled_from(HARD), st.sampled_from(HARD)), max_size=6
).map("".join)

# Each reader's own key grammar (what it accepts as a name), so that a key the product
# refuses is one the reader could take: the refusal must then be a documented one.
_WIDE = r"[A-Za-z0-9_.-]{1,14}"  # python-dotenv, docker kvfile, npm dotenv, files
KEY_GRAMMAR = {
    "compose": r"[A-Za-z0-9_.\[\]-]{1,14}",  # compose-go: letters, digits, _ . - [ ]
    "dotenv": _WIDE,
    "shell": r"[A-Za-z_][A-Za-z0-9_]{0,14}",  # a shell name
    "docker": _WIDE,
    "systemd": r"[A-Za-z_][A-Za-z0-9_]{0,14}",  # env_name_is_valid
    "node": _WIDE,
    "files": _WIDE,
    "raw": r"[A-Za-z_][A-Za-z0-9_]{0,14}",
}


def _nonchar(value: str) -> bool:
    return any(0xFDD0 <= ord(c) <= 0xFDEF or (ord(c) & 0xFFFE) == 0xFFFE for c in value)


def documented(fmt: str, problem: Problem, key: str, value: str) -> bool:
    """Whether a refusal is of a class docs/fidelity-rules.md lists for `fmt`."""
    if problem.rule == "invalid-key":
        return not KEY_RE.match(key)
    if problem.rule == "sops-prefix":
        return key.lower().startswith("sops_")
    if fmt == "files" and problem.rule in ("unsafe-file-name", "file-name-collision"):
        return not SAFE_NAME.match(key) or problem.rule == "file-name-collision"
    if problem.rule != "unrepresentable":
        return False
    if "\x00" in value:
        return True
    return {
        "compose": False,
        "dotenv": bool(DOTENV_VARIABLE.search(value)),
        "shell": key in RESERVED,
        "docker": "\n" in value or value.endswith("\r"),
        "systemd": _nonchar(value),
        "node": "\r" in value
        or all(q in value for q in "'\"`")
        or node.ends_in_escaping_backslash(value),
        "files": False,
    }.get(fmt, False)


# --- the real readers ---------------------------------------------------------------------

Reader = Callable[[Path], dict[str, str]]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


def _shell(shell: str, path: Path) -> dict[str, str]:
    proc = subprocess.run(
        [shell, "-c", f". {path}; exec /usr/bin/env -0"],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        timeout=60,
        check=False,
        cwd=path.parent,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, str] = {}
    for item in proc.stdout.split(b"\0"):
        if item:
            key, _, value = item.decode("utf-8").partition("=")
            out[key] = value
    return out


@pytest.fixture(scope="module")
def real_readers() -> Iterator[dict[str, Callable[[Path, set[str]], dict[str, str]]]]:
    """fmt -> read(path, keys): what the format's real reader(s) deliver for `keys`."""
    with (
        readers.go_reader("composeparse") as compose,
        readers.go_reader("kvfileparse") as kvfile,
        readers.node_reader() as node,
    ):
        lib = readers.systemd_library()

        def env_of(answer: dict[str, Any]) -> dict[str, str]:
            assert "error" not in answer, answer.get("error")
            found: dict[str, str] = answer.get("env") or {}
            return found

        def node_read(path: Path, keys: set[str]) -> dict[str, str]:
            answer = node(path)
            assert answer["dotenv"] == answer["parseEnv"], "npm dotenv and util.parseEnv differ"
            got: dict[str, str] = answer["dotenv"]
            return got

        def shell_read(path: Path, keys: set[str]) -> dict[str, str]:
            script = path.with_name("set-a.sh")
            script.write_bytes(b"set -a\n" + path.read_bytes())
            bash, dash = _shell("bash", script), _shell("dash", script)
            assert {k: bash.get(k) for k in keys} == {k: dash.get(k) for k in keys}
            return {k: bash[k] for k in keys if k in bash}

        yield {
            "compose": lambda p, k: env_of(compose(p)),
            "dotenv": lambda p, k: {a: b or "" for a, b in dotenv_values(p).items()},
            "shell": shell_read,
            "docker": lambda p, k: env_of(kvfile(p)),
            "systemd": lambda p, k: env_of(readers.systemd_read(lib, p)),
            "node": node_read,
        }


# --- the property ---------------------------------------------------------------------------


def _plan(values: dict[str, str], fmt: str, workdir: Path) -> deploy.Plan:
    """`build_plan` for a sops json source holding `values` (decrypted: its JSON)."""
    enc = sops.EncryptedFile(str(workdir / "secrets.json.encrypted"), "json", ())
    target = "/srv/app" if fmt == "files" else "/srv/app/.env"
    settings_ = Settings(command="validate", files=(enc.path,), format=fmt, remote_path=target)
    plaintext = json.dumps(values).encode()
    if fmt == "raw":
        enc = sops.EncryptedFile(enc.path, "binary", ())
        plaintext = "".join(f"{k}={v}\n" for k, v in values.items()).encode()
    return deploy.build_plan(settings_, [(enc, plaintext)], lambda _: None)


def check_format(
    fmt: str,
    values: dict[str, str],
    workdir: Path,
    read: Callable[[Path, set[str]], dict[str, str]] | None,
) -> None:
    try:
        plan = _plan(values, fmt, workdir)
    except ValidationError as exc:
        errors = [p for p in exc.problems if p.severity == "error"]
        refused: set[str] = set()
        for p in errors:
            if p.key is None:
                # a key that may be a pasted value is named by its line only (none here:
                # the source file does not exist): it must be one that is not a name
                assert p.rule == "invalid-key", f"a refusal names no key: {p.rule}"
                refused |= {k for k in values if looks_like_value(k) and not KEY_RE.match(k)}
                continue
            assert p.key in values, f"a refusal names another key: {p.rule}"
            assert documented(fmt, p, p.key, values[p.key]), f"undocumented refusal: {p}"
            refused.add(p.key)
        rest = {k: v for k, v in values.items() if k not in refused}
        if not rest:
            return
        plan = _plan(rest, fmt, workdir)
        values = rest
    if fmt == "raw":
        assert plan.content == "".join(f"{k}={v}\n" for k, v in values.items()).encode()
        return
    if fmt == "files":
        (part,) = plan.targets
        assert {k: b.decode("utf-8") for k, b in part.files.items()} == values
        return
    assert read is not None
    path = workdir / ".env"
    path.write_bytes(plan.content)
    got = read(path, set(values))
    assert {k: got.get(k) for k in values} == values


def _maps(fmt: str) -> st.SearchStrategy[dict[str, str]]:
    keys = st.from_regex(KEY_GRAMMAR[fmt], fullmatch=True)
    return st.dictionaries(keys, VALUES, min_size=1, max_size=10)


@pytest.mark.parametrize("fmt", ["compose", "dotenv", "shell", "docker", "systemd", "node"])
def test_every_format_carries_exactly_or_refuses_by_documented_class(
    fmt: str,
    real_readers: dict[str, Callable[[Path, set[str]], dict[str, str]]],
    workdir: Path,
) -> None:
    """The format's real reader reads back exactly every value the plan carries; every
    refusal names a key and is of a documented class."""

    @PROFILE
    @given(values=_maps(fmt))
    def run(values: dict[str, str]) -> None:
        check_format(fmt, values, workdir, real_readers[fmt])

    run()


_RAW_VALUE = re.compile(r"[^\x00\n\r'\"\\#$ ]{0,12}")


@pytest.mark.parametrize("fmt", ["files", "raw"])
def test_files_and_raw_carry_bytes_exactly(fmt: str, workdir: Path) -> None:
    """files: one file per key with the value's bytes; raw: the decrypted bytes unchanged."""
    values = st.from_regex(_RAW_VALUE, fullmatch=True) if fmt == "raw" else VALUES
    keys = st.from_regex(KEY_GRAMMAR[fmt], fullmatch=True)

    @PROFILE
    @given(found=st.dictionaries(keys, values, min_size=1, max_size=10))
    def run(found: dict[str, str]) -> None:
        check_format(fmt, found, workdir, None)

    run()


# --- one end-to-end check through sops and the CLI -----------------------------------------

ADVERSARIAL = {
    "JWT_PAD": "=lead",
    "EQ_ONLY": "=",
    "X2": "==x==",
    "Auth0ClientSecret": "s3cr3t-auth0",
    "S3Bucket2Name": "bucket",
    "SAML2_IDP_x509": "null",
    "BRACED": "${POSTGRES_USER}",
    "MULTI": "line1\nline2",
}


@pytest.mark.parametrize("fmt", ["compose", "dotenv", "shell", "docker", "systemd", "node"])
def test_cli_validate_of_a_sops_yaml_file(
    fmt: str, cli: Callable[..., CliResult], encrypt: Callable[..., Path]
) -> None:
    """The real CLI on a real sops yaml file: valid, or exit 4 naming only documented keys."""
    path = encrypt(json.dumps(ADVERSARIAL), fmt="json", name="s.json.encrypted")
    result = cli("validate", "--file", str(path), "--format", fmt)
    expected = {"dotenv": {"BRACED"}, "docker": {"MULTI"}}.get(fmt, set())
    if not expected:
        assert result.returncode == 0, result.output
        return
    assert result.returncode == 4, result.output
    named = set(re.findall(r": (\w+): \[unrepresentable\]", result.output))
    assert named == expected
