"""Names that decide exposure: `export-env: '*'` never hands a later step a name that
changes what it runs (LD_PRELOAD, BASH_ENV, PATH, GITHUB_*, …) unless it is listed by
name; a key whose name says secret is masked whatever its value's length."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import assert_no_secrets
from tests.test_action import HEREDOC, run_on_github


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "BASH_ENV",
        "ENV",
        "PATH",
        "GITHUB_TOKEN",
        "RUNNER_TEMP",
        "NODE_OPTIONS",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PERL5OPT",
        "RUBYOPT",
        "DYLD_INSERT_LIBRARIES",
        "IFS",
        "PS4",
        "SHELLOPTS",
        "HOME",
        "GIT_SSH_COMMAND",
    ],
)
def test_export_env_star_refuses_a_dangerous_name(
    base_env: dict[str, str],
    encrypt: Callable[..., Path],
    target_args: list[str],
    remote_dir: Path,
    tmp_path: Path,
    name: str,
) -> None:
    """`*` with such a key fails with exit 2 naming the key and the fix; nothing is exported
    and no server file is written."""
    enc = encrypt(f"API_TOKEN=tok_exp_1a2b3c4d\n{name}=/tmp/attacker-controlled-value\n")
    proc, files = run_on_github(
        base_env, tmp_path, "deploy", "--file", str(enc), *target_args, "--export-env", "*"
    )
    assert proc.returncode == 2, proc.stdout
    assert f"would export {name}," in proc.stdout
    assert f"'*,{name}'" in proc.stdout
    assert files["GITHUB_ENV"].read_text() == ""
    assert not (remote_dir / ".env").exists()


def test_export_env_star_exports_a_dangerous_name_listed_by_name(
    base_env: dict[str, str], encrypt: Callable[..., Path], tmp_path: Path
) -> None:
    """Nearest valid: `*,PATH` (or PATH alone) exports it; `*` exports ordinary names."""
    enc = encrypt("API_TOKEN=tok_exp_5e6f7a8b\nPATH=/opt/app/bin\nPATHWAY=ok-1\n")
    proc, files = run_on_github(
        base_env, tmp_path, "validate", "--file", str(enc), "--export-env", "*,PATH"
    )
    assert proc.returncode == 0, proc.stdout
    exported = {n: v for n, _, v in HEREDOC.findall(files["GITHUB_ENV"].read_text())}
    assert exported == {"API_TOKEN": "tok_exp_5e6f7a8b", "PATH": "/opt/app/bin", "PATHWAY": "ok-1"}
    plain = encrypt("API_TOKEN=tok_exp_5e6f7a8b\nPATHWAY=ok-1\n", name="plain.env")
    files["GITHUB_ENV"].write_text("")
    proc, files = run_on_github(
        base_env, tmp_path, "validate", "--file", str(plain), "--export-env", "*"
    )
    assert proc.returncode == 0, proc.stdout
    assert len(HEREDOC.findall(files["GITHUB_ENV"].read_text())) == 2


def test_short_value_of_a_secret_named_key_is_masked(
    base_env: dict[str, str],
    encrypt: Callable[..., Path],
    target_args: list[str],
    tmp_path: Path,
) -> None:
    """DB_PASSWORD=Zq9 and SESSION_SECRET=Wv3 are masked (::add-mask:: and the post-command
    output); nearest valid: PORT=80 (not named like a secret) and a secret-named key
    marked public (DEMO_PIN=123) stay readable."""
    enc = encrypt(
        "DB_PASSWORD=Zq9\nSESSION_SECRET=Wv3\napiKey=k9\nPORT=80\nDEMO_PIN=123\n",
        guard=False,
    )
    proc, files = run_on_github(
        base_env,
        tmp_path,
        "deploy",
        "--file",
        str(enc),
        *target_args,
        "--public-keys",
        "DEMO_PIN",
        "--post-command",
        "cat .env",
    )
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    masks = {line.removeprefix("::add-mask::") for line in lines if line.startswith("::add-mask::")}
    assert {"Zq9", "Wv3", "k9"} <= masks
    assert not {"80", "123"} & masks
    printed = "\n".join(line for line in lines if not line.startswith("::add-mask::"))
    assert "DB_PASSWORD='***'" in printed
    assert "SESSION_SECRET='***'" in printed
    assert "apiKey='***'" in printed
    assert_no_secrets(printed, {"Zq9", "Wv3"})
    assert_no_secrets(files["GITHUB_STEP_SUMMARY"].read_text(), {"Zq9", "Wv3"})
    assert "PORT='80'" in printed
    assert "DEMO_PIN='123'" in printed
