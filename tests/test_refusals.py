"""Source and format defects found by reading a hostile corpus back with real readers: each
is refused (or warned about) by key, with exit 4, and never deploys a changed value."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from sops_deploy import envfile
from sops_deploy.envfile import Entry, shell, structured
from tests.support import CliResult

Cli = Callable[..., CliResult]
TEXT_FORMATS = ["compose", "dotenv", "shell", "docker", "systemd", "node"]
BAD_KEYS = ["A B", "A$B", "A/B", "A*B", 'A"B', "A'B", "A#B", "A;B", "A\\B"]


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize("key", [pytest.param(k, id=f"key-{i}") for i, k in enumerate(BAD_KEYS)])
def test_an_invalid_key_is_lint_not_a_crash(fmt: str, key: str) -> None:
    """Rendering skips an invalid key (no exception): lint alone reports it, as invalid-key."""
    entries = [Entry(key, "value", "s.yaml", 1), Entry("GOOD", "v", "s.yaml", 2)]
    assert [p.rule for p in envfile.lint(entries)] == ["invalid-key"]
    content, problems = envfile.render_checked(envfile.merge([entries]), fmt)
    assert problems == []
    assert envfile.MODELS[fmt](content.decode()) == {"GOOD": "v"}


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_validate_refuses_invalid_keys_in_every_format(
    cli: Cli, encrypt: Callable[..., Path], fmt: str
) -> None:
    """A yaml source with nine bad key names: exit 4, nine invalid-key problems, no traceback."""
    plain = "".join(f"{json.dumps(k)}: value-{i}\n" for i, k in enumerate(BAD_KEYS))
    enc = encrypt(plain + "GOOD: good-value\n", name="bad.yaml", fmt="yaml")
    result = cli("validate", "--file", str(enc), "--format", fmt)
    assert result.returncode == 4, result.output
    assert result.stderr.count("[invalid-key]") == len(BAD_KEYS)
    assert "Traceback" not in result.output


def test_duplicate_key_in_a_json_source_is_refused(cli: Cli, encrypt: Callable[..., Path]) -> None:
    """sops keeps both members of a repeated JSON key: the source is refused, naming it."""
    enc = encrypt('{"DUP": "first-value", "DUP": "second-value"}', name="d.json", fmt="json")
    result = cli("validate", "--file", str(enc))
    assert result.returncode == 4, result.output
    assert "DUP: [duplicate-key]" in result.stderr


def test_sops_itself_refuses_a_duplicate_key_in_yaml(
    sops_bin: str, age_id: object, tmp_path: Path
) -> None:
    """The yaml store cannot hold a repeated key: sops fails to encrypt it (nothing to deploy)."""
    plain = tmp_path / "d.yaml"
    plain.write_text("DUP: one\nDUP: two\n")
    public = age_id.public
    proc = subprocess.run(
        [sops_bin, "encrypt", "--age", public, str(plain)], capture_output=True, check=False
    )
    assert proc.returncode != 0
    assert b"already defined" in proc.stderr


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_raw_refuses_a_structured_source(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path, fmt: str
) -> None:
    """--format raw with a yaml/json store would write sops's JSON as the .env: exit 2."""
    plain = "A: raw-value-1\n" if fmt == "yaml" else '{"A": "raw-value-1"}'
    enc = encrypt(plain, name=f"r.{fmt}", fmt=fmt)
    result = cli("deploy", "--file", str(enc), "--format", "raw", *target_args)
    assert result.returncode == 2, result.output
    assert "yaml/json" in result.stderr
    assert not (remote_dir / ".env").exists()


@pytest.mark.parametrize(
    ("fmt", "plain", "keys"),
    [
        pytest.param(
            "yaml", "OCT: 010\nHEX: 0x1F\nDEC: 1.10\nEXP: 1E-7\nTEXT: '010'\n",
            ["OCT", "HEX", "DEC", "EXP"], id="yaml",
        ),
        pytest.param(
            "json", '{"BIG": 12345678901234567890, "EXP": 1E-7, "TEXT": "010"}',
            ["BIG", "EXP"], id="json",
        ),
    ],
)  # fmt: skip
def test_typed_scalars_are_warned_about_by_key(
    cli: Cli, encrypt: Callable[..., Path], fmt: str, plain: str, keys: list[str]
) -> None:
    """A number in a yaml/json source is a typed-scalar warning naming the key (text is not)."""
    enc = encrypt(plain, name=f"t.{fmt}", fmt=fmt)
    result = cli("validate", "--file", str(enc))
    assert result.returncode == 0, result.output
    warned = re.findall(r"(\w+): \[typed-scalar\]", result.output)
    assert sorted(warned) == sorted(keys)


def test_typed_scalars_keep_the_spelling_sops_decrypts_to() -> None:
    """The value is the text sops printed (1e-7 stays 1e-7; nothing is re-rounded here)."""
    entries, _ = structured.parse_json_map('{"E": 1e-7, "B": 12345678901234567000}', "t.json")
    assert [e.value for e in entries] == ["1e-7", "12345678901234567000"]


def test_empty_source_is_refused_unless_allowed(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """A comments-only source would wipe the server's file: exit 4, unless --allow-empty."""
    (remote_dir / ".env").write_text("KEEP=kept-value\n")
    enc = encrypt("# only a comment\n")
    result = cli("deploy", "--file", str(enc), *target_args)
    assert result.returncode == 4, result.output
    assert "[empty-source]" in result.stderr
    assert (remote_dir / ".env").read_text() == "KEEP=kept-value\n"
    allowed = cli("deploy", "--file", str(enc), *target_args, env={"SOPS_DEPLOY_ALLOW_EMPTY": "1"})
    assert allowed.returncode == 0, allowed.output
    assert (remote_dir / ".env").read_bytes() == b""


# --- bash: names it will not deliver, and values it would expand --------------------------


def _names_in_bash() -> set[str]:
    """Candidate names from bash itself: upper-case identifiers in its binary, and its own."""
    bash = shutil.which("bash")
    assert bash is not None
    data = Path(bash).read_bytes()
    names = {m.decode() for m in re.findall(rb"(?<=\x00)[A-Z_][A-Z0-9_]{1,30}(?=\x00)", data)}
    own = subprocess.run([bash, "--norc", "-c", "compgen -v"], capture_output=True, env={})
    return names | set(own.stdout.decode().split()) | shell.RESERVED


@pytest.mark.slow
def test_shell_refuses_exactly_the_names_bash_or_dash_do_not_deliver(tmp_path: Path) -> None:
    """Each candidate name, sourced then exec'd as a service would: the ones that do not arrive
    unchanged in bash or dash are exactly the names the shell format refuses."""
    lost: set[str] = set()
    for name in sorted(_names_in_bash()):
        (tmp_path / ".env").write_text(f"{name}='v-al ue'\n")
        for sh in ("bash", "dash"):
            out = subprocess.run(
                [sh, "-c", "set -a; . ./.env; exec /usr/bin/env -0"],
                cwd=tmp_path,
                capture_output=True,
                env={"PATH": "/usr/bin:/bin"},
                check=False,
            ).stdout.split(b"\0")
            if f"{name}=v-al ue".encode() not in out:
                lost.add(name)
    assert lost == shell.RESERVED
    assert {"PIPESTATUS", "BASH_ALIASES", "BASH_CMDS", "COMP_WORDBREAKS", "SHLVL"} <= lost


@pytest.mark.parametrize(
    "line",
    [
        pytest.param('T="$X"', id="double-quoted-variable"),
        pytest.param("T=$HOME", id="variable"),
        pytest.param("T=~/d", id="tilde"),
        pytest.param("T=a:~/d", id="tilde-after-colon"),
        pytest.param('T="$(echo hi)"', id="command-substitution"),
        pytest.param("T=`echo hi`", id="backquotes"),
        pytest.param("T=${X:-d}", id="braced"),
    ],
)
def test_shell_model_treats_what_bash_expands_as_unknown(line: str, tmp_path: Path) -> None:
    """A value bash would expand reads as None (drift), and bash really changes it."""
    text = line + "\n"
    assert envfile.MODELS["shell"](text) == {"T": None}
    (tmp_path / ".env").write_text(text)
    out = subprocess.run(
        ["bash", "-c", 'set -a; . ./.env; printf %s "$T"'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/home/canary", "X": "canary"},
        check=False,
    ).stdout
    literal = line.split("=", 1)[1].strip('"')
    assert out != literal


def test_check_reports_a_hand_edit_bash_would_expand(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], remote_dir: Path
) -> None:
    """check --format shell: T="$X" on the server where the source has T='$X' is drift (exit 3)."""
    enc = encrypt("T='$X'\nU=same-value-u\n")
    (remote_dir / ".env").write_text("T=\"$X\"\nU='same-value-u'\n")
    (remote_dir / ".env").chmod(0o600)
    result = cli("check", "--file", str(enc), "--format", "shell", *target_args)
    assert result.returncode == 3, result.output
    assert "changed: T" in result.stdout
