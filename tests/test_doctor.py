"""`sops-deploy doctor`: one ✓/✗ line per check, each ✗ with its fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sops_deploy.sops import agekey
from tests.maintaining import Cli, init_repo
from tests.sshd import Sshd, free_port
from tests.support import AgeIdentity, target_flags


def _doctor_args(sshd_server: Sshd, remote_dir: Path) -> list[str]:
    return [
        "doctor",
        *target_flags(sshd_server.host, remote_dir / ".env", ssh_key_file=sshd_server.client_key),
    ]


@pytest.fixture
def healthy(
    cli: Cli, tmp_path: Path, sshd_server: Sshd, remote_dir: Path, secret_values: set[str]
) -> dict[str, str]:
    """A repository set up by init; returns the environment doctor runs with."""
    result = init_repo(cli, tmp_path, sshd_server, remote_dir, secret_values, "--yes")
    assert result.returncode == 0, result.stderr
    return {"AGE_KEY": (tmp_path / "secrets" / "age-key.txt").read_text(), "SSH_PRIVATE_KEY": ""}


def test_doctor_passes_on_a_healthy_setup(
    cli: Cli, healthy: dict[str, str], sshd_server: Sshd, remote_dir: Path
) -> None:
    """On what init made, every doctor check passes and it exits 0."""
    result = cli(*_doctor_args(sshd_server, remote_dir), env=healthy)
    assert result.returncode == 0, result.stdout
    assert "✗" not in result.stdout
    for name in ("sops:", ".sops.yaml:", "age key:", "recipients:", "decrypts", "secrets valid:"):
        assert f"✓ {name}" in result.stdout or name in result.stdout
    assert f"✓ host {sshd_server.host}" in result.stdout
    assert "all checks passed" in result.stdout


def test_doctor_marks_a_missing_ssh_key_with_a_bang_not_a_tick(
    cli: Cli, healthy: dict[str, str], sshd_server: Sshd, remote_dir: Path, tmp_path: Path
) -> None:
    """No key to log in with is not a ✓: a `!` line with its fix; doctor still passes."""
    known = tmp_path / "secrets" / "known_hosts"
    home = tmp_path / "empty-home"
    home.mkdir()
    result = cli(
        "doctor",
        *target_flags(sshd_server.host, remote_dir / ".env", known),
        env={**healthy, "HOME": str(home), "SSH_AUTH_SOCK": ""},
    )
    assert result.returncode == 0, result.stdout
    line = next(x for x in result.stdout.splitlines() if "no SSH private key" in x)
    assert line.startswith("! keys for "), line
    assert "✓ keys for" not in result.stdout
    assert "warning(s)" in result.stdout


def _break_yaml(root: Path) -> None:
    (root / ".sops.yaml").write_text("creation_rules: [\n")


def _out_of_sync(root: Path) -> None:
    _, extra = agekey.generate()
    text = (root / ".sops.yaml").read_text()
    (root / ".sops.yaml").write_text(text.replace("age: age1", f"age: {extra},age1"))


def _unpin(root: Path) -> None:
    (root / "secrets" / "known_hosts").write_text("")


@pytest.mark.parametrize(
    ("breakage", "env", "extra", "check", "fix"),
    [
        pytest.param(
            lambda r: (r / ".sops.yaml").unlink(),
            {},
            [],
            ".sops.yaml",
            "run `sops-deploy init`",
            id="no-sops-yaml",
        ),
        pytest.param(_break_yaml, {}, [], ".sops.yaml", "fix the YAML syntax", id="bad-sops-yaml"),
        pytest.param(None, {"AGE_KEY": ""}, [], "age key", "export AGE_KEY=", id="no-age-key"),
        pytest.param(
            None,
            {"AGE_KEY": "", "SOPS_AGE_KEY_FILE": "/nonexistent/key.txt"},
            [],
            "age key",
            "init writes secrets/age-key.txt",
            id="age-key-file-missing",
        ),
        pytest.param(
            None,
            {"AGE_KEY": "age1notaprivatekey"},
            [],
            "age key",
            "AGE-SECRET-KEY-1",
            id="public-key-pasted",
        ),
        pytest.param(
            None,
            {"AGE_KEY": "OTHER"},
            [],
            "secrets/.env.encrypted recipients",
            "sops-deploy recipients add age1",
            id="not-a-recipient",
        ),
        pytest.param(
            _out_of_sync,
            {},
            [],
            "secrets/.env.encrypted recipients",
            "sops updatekeys -y",
            id="recipients-out-of-sync",
        ),
        pytest.param(
            lambda r: (r / "secrets" / ".env.encrypted").unlink(),
            {},
            [],
            "secrets/.env.encrypted",
            "pass the encrypted file with --file",
            id="encrypted-file-missing",
        ),
        pytest.param(
            None,
            {},
            ["--required", "MISSING_KEY"],
            "secrets valid",
            "sops-deploy validate",
            id="required-key-missing",
        ),
        pytest.param(_unpin, {}, [], "host", "--host-key-fingerprint SHA256:", id="host-unpinned"),
        pytest.param(
            None,
            {},
            ["--host", "PORT"],
            "host",
            "check the host name and port",
            id="host-unreachable",
        ),
        pytest.param(
            None,
            {"SOPS_DEPLOY_SOPS": "/nonexistent/sops"},
            [],
            "sops",
            "point it at a sops binary",
            id="sops-missing",
        ),
    ],
)
def test_doctor_names_the_fix_for_each_broken_setup(
    cli: Cli,
    healthy: dict[str, str],
    tmp_path: Path,
    sshd_server: Sshd,
    remote_dir: Path,
    other_age_id: AgeIdentity,
    breakage: Callable[[Path], None] | None,
    env: dict[str, str],
    extra: list[str],
    check: str,
    fix: str,
) -> None:
    """Each broken setup gets a ✗ line for the right check, its fix, and exit 1."""
    if breakage is not None:
        breakage(tmp_path)
    run_env = {
        **healthy,
        **{k: (other_age_id.secret if v == "OTHER" else v) for k, v in env.items()},
    }
    extra = [f"127.0.0.1:{free_port()}" if a == "PORT" else a for a in extra]
    result = cli(*_doctor_args(sshd_server, remote_dir), *extra, env=run_env)
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    failed = [i for i, line in enumerate(lines) if line.startswith(f"✗ {check}")]
    assert failed, result.stdout
    assert any(fix in lines[i + 1] for i in failed if i + 1 < len(lines)), result.stdout
    assert "check(s) failed" in result.stdout
