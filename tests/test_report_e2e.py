"""The masking policy and the redaction layer end to end: real sops files (which keys sops
stores in clear), the real CLI in GitHub mode, and a real sshd whose post-command prints
the deployed .env."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sops_deploy.envfile import render
from sops_deploy.output import redact
from sops_deploy.plan import publicity
from sops_deploy.sops import runner
from tests.support import AgeIdentity, CliResult, assert_no_secrets


def _sops_encrypt(
    sops_bin: str, age: AgeIdentity, tmp_path: Path, plain: str, fmt: str, rules: list[str]
) -> Path:
    src = tmp_path / f"plain.{fmt}"
    src.write_text(plain)
    proc = subprocess.run(
        [
            sops_bin,
            "encrypt",
            "--input-type",
            fmt,
            "--output-type",
            fmt,
            "--age",
            age.public,
            *rules,
            str(src),
        ],
        capture_output=True,
        check=True,
    )
    src.unlink()
    out = tmp_path / f"secrets.{fmt}.encrypted"
    out.write_bytes(proc.stdout)
    return out


DOTENV = "LAN_IP_unencrypted=192.0.2.10\nAPI_TOKEN=tok_abc_123456\nDEBUG=true\nLOG_LEVEL=info\n"
YAML = "LAN_IP_unencrypted: 192.0.2.10\nAPI_TOKEN: tok_abc_123456\nDEBUG: 'true'\nLOG_LEVEL: info\n"


@pytest.mark.parametrize(
    ("rules", "clear"),
    [
        pytest.param([], {"LAN_IP_unencrypted"}, id="default-unencrypted-suffix"),
        pytest.param(["--unencrypted-suffix", "_LEVEL"], {"LOG_LEVEL"}, id="unencrypted-suffix"),
        pytest.param(["--unencrypted-regex", "^(DEBUG|LOG_)"], {"DEBUG", "LOG_LEVEL"}, id="u-re"),
        pytest.param(
            ["--encrypted-regex", "TOKEN"],
            {"LAN_IP_unencrypted", "DEBUG", "LOG_LEVEL"},
            id="encrypted-regex-complement",
        ),
        pytest.param(
            ["--encrypted-suffix", "_TOKEN"],
            {"LAN_IP_unencrypted", "DEBUG", "LOG_LEVEL"},
            id="encrypted-suffix-complement",
        ),
    ],
)
@pytest.mark.parametrize("fmt", ["dotenv", "yaml"])
def test_keys_sops_stores_in_clear_are_public(
    sops_bin: str, age_id: AgeIdentity, tmp_path: Path, rules: list[str], clear: set[str], fmt: str
) -> None:
    """What sops leaves unencrypted under each of its rules is exactly the clear keys."""
    path = _sops_encrypt(
        sops_bin, age_id, tmp_path, DOTENV if fmt == "dotenv" else YAML, fmt, rules
    )
    assert publicity.clear_keys(str(path), runner.inspect(str(path)).stored_format) == clear


@pytest.fixture
def gh_cli(
    base_env: dict[str, str], tmp_path: Path, secret_values: set[str]
) -> Callable[..., tuple[CliResult, str]]:
    """Run the CLI as the action does (GITHUB_ACTIONS=true, the runner's files); returns
    the result and all it wrote except its `::add-mask::` lines, checked for secrets."""

    def _run(*args: str) -> tuple[CliResult, str]:
        env = {
            **base_env,
            "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(tmp_path / "gh-output"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "gh-summary.md"),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "sops_deploy", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        result = CliResult(proc.returncode, proc.stdout, proc.stderr)
        files = [tmp_path / "gh-output", tmp_path / "gh-summary.md"]
        text = result.output + "".join(f.read_text() for f in files if f.exists())
        text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("::add-mask::"))
        assert_no_secrets(text, secret_values)
        return result, text

    return _run


def test_public_values_stay_readable_and_secrets_are_masked(
    gh_cli: Callable[..., tuple[CliResult, str]],
    encrypt: Callable[..., Path],
    tmp_path: Path,
    secret_values: set[str],
) -> None:
    """DEBUG=true, a short number, and a host address marked `# public` are never masked;
    the secret is, in every form."""
    plain = (
        "DEBUG=true\nWORKERS=2\nLAN_IP=192.0.2.10\nLOG_LEVEL=verbose\n"
        'API_TOKEN="tok_\\"q\\"_ü_9f8e"\n'
    )
    enc = encrypt(plain, guard=False)
    secret_values.add('tok_"q"_ü_9f8e')
    schema = tmp_path / ".env.example"
    schema.write_text("DEBUG=\nWORKERS=\nLAN_IP=  # public\n# public\nLOG_LEVEL=\nAPI_TOKEN=\n")
    result, _ = gh_cli("validate", "--file", str(enc), "--schema", str(schema))
    assert result.returncode == 0, result.output
    masks = re.findall(r"^::add-mask::(.*)$", result.stdout, re.M)
    assert masks, "the secret was not masked"
    for public in ("true", "192.0.2.10", "verbose"):
        assert public not in masks
    assert any(m.startswith("tok_") for m in masks)
    assert json.dumps('tok_"q"_ü_9f8e')[1:-1] in masks  # the JSON form is masked too


SECRET_VALUES = {
    "QUOTED": 'pa"ss\\word-7f',
    "UNICODE": "grüße-🔑-ab12",
    "MULTI": "line-one-x1\nline-two-y2",
    "DOLLAR": "co$t-$HOME-9z",
}


def test_post_command_output_never_leaks_a_value_in_any_form(
    gh_cli: Callable[..., tuple[CliResult, str]],
    tmp_path: Path,
    target_args: list[str],
    secret_values: set[str],
    sops_bin: str,
    age_id: AgeIdentity,
) -> None:
    """`cat .env; exit 1` prints the deployed file (escaped by the compose encoder) on a
    real server: no raw, escaped or JSON form of any value appears in stdout, stderr,
    the step summary or GITHUB_OUTPUT (including the `report` JSON)."""
    plain = render(SECRET_VALUES, "compose")
    src = tmp_path / "p.env"
    src.write_bytes(plain)
    proc = subprocess.run(
        [
            sops_bin,
            "encrypt",
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
            "--age",
            age_id.public,
            str(src),
        ],
        capture_output=True,
        check=True,
    )
    src.unlink()
    enc = tmp_path / "s.env.encrypted"
    enc.write_bytes(proc.stdout)
    secret_values.update(SECRET_VALUES.values())
    result, text = gh_cli(
        "deploy",
        "--file",
        str(enc),
        "--post-command",
        "cat .env; printf '%s\\n' \"$(cat .env | od -c | head -1)\"; exit 1",
        "--format",
        "compose",
        *target_args,
    )
    assert result.returncode == 1, result.output
    assert "post-command" in text
    assert "***" in text
    for value in SECRET_VALUES.values():
        for form in redact.forms(value):
            assert form not in text, f"a form of a value leaked ({len(form)} chars)"


def test_a_pem_continuation_line_is_reported_by_line_never_by_its_text(
    gh_cli: Callable[..., tuple[CliResult, str]],
    encrypt: Callable[..., Path],
    secret_values: set[str],
) -> None:
    """An unquoted multi-line PEM value: its base64 line reads as a "key"; the problem
    names line 2, and neither the text nor its upper-cased "rename it to" form appears."""
    fragment = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"
    plain = f"TLS_KEY=-----BEGIN PRIVATE KEY-----\n{fragment}==\n-----END PRIVATE KEY-----\n"
    enc = encrypt(plain, fmt="binary", guard=False)  # sops's dotenv store refuses the file
    secret_values.update({fragment, fragment.upper()})
    result, text = gh_cli("validate", "--file", str(enc))
    assert result.returncode == 4, result.output
    assert re.search(r"^::error title=value-fragment,line=2,file=[^,]+::line 2", text, re.M)
