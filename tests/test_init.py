"""`sops-deploy init` end to end: real sops, age, sshd and git; nothing overwritten."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from sops_deploy.sops import agekey
from tests.maintaining import PLAIN, VALUES, Cli, init_repo, printed_deploy_command, sops_plaintext
from tests.sshd import Sshd, free_port


def test_init_then_printed_deploy_command_works(
    cli: Cli, tmp_path: Path, sshd_server: Sshd, remote_dir: Path, secret_values: set[str]
) -> None:
    """In an empty git repo, init then the printed deploy command deploys every value."""
    result = init_repo(cli, tmp_path, sshd_server, remote_dir, secret_values, "--yes")
    assert result.returncode == 0, result.stderr
    key_file = tmp_path / "secrets" / "age-key.txt"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    ignored = subprocess.run(
        ["git", "-C", str(tmp_path), "check-ignore", "secrets/age-key.txt", ".env"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ignored.stdout.split() == ["secrets/age-key.txt", ".env"], "must be git-ignored"
    public = subprocess.run(
        ["age-keygen", "-y", str(key_file)], capture_output=True, text=True, check=True
    ).stdout.strip()
    config = yaml.safe_load((tmp_path / ".sops.yaml").read_text())
    assert config["creation_rules"][0]["age"] == public
    pinned = (tmp_path / "secrets" / "known_hosts").read_text().split()
    assert pinned == sshd_server.known_hosts_line.split()
    assert "gh secret set AGE_KEY < secrets/age-key.txt" in result.stdout
    assert (tmp_path / ".env").exists(), "--yes keeps the plaintext (documented safe default)"

    argv = printed_deploy_command(result.stdout)
    deployed = cli(*argv, env={"AGE_KEY": "", "SSH_PRIVATE_KEY": ""})
    assert deployed.returncode == 0, deployed.stderr
    assert dotenv_values(remote_dir / ".env", interpolate=False) == VALUES


def test_init_workflow_uses_the_action_inputs(
    cli: Cli, tmp_path: Path, sshd_server: Sshd, remote_dir: Path, secret_values: set[str]
) -> None:
    """The written workflow calls the action with inputs action.yml declares, values from init."""
    assert init_repo(cli, tmp_path, sshd_server, remote_dir, secret_values, "--yes").returncode == 0
    workflow = yaml.safe_load((tmp_path / ".github/workflows/deploy-secrets.yml").read_text())
    step = next(
        s for s in workflow["jobs"]["deploy"]["steps"] if "sops-deploy@" in s.get("uses", "")
    )
    assert step["with"]["host"] == sshd_server.host
    assert step["with"]["remote-path"] == str(remote_dir / ".env")
    assert step["with"]["file"] == "secrets/.env.encrypted"
    assert step["with"]["age-key"] == "${{ secrets.AGE_KEY }}"
    assert workflow["permissions"] == {"contents": "read"}
    branch = subprocess.run(
        ["git", "-C", str(tmp_path), "symbolic-ref", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert workflow[True]["push"]["branches"] == [branch]  # YAML 1.1 reads `on:` as True
    action = yaml.safe_load((Path(__file__).parent.parent / "action.yml").read_text())
    declared = set(action.get("inputs") or {})
    if declared:  # the composite action's inputs (DESIGN.md); absent only before it lands
        assert set(step["with"]) <= declared


@pytest.mark.parametrize(
    ("answers", "pinned", "plaintext_left"),
    [
        pytest.param("n\n", False, True, id="host-key-refused-writes-nothing"),
        pytest.param("y\ny\n", True, False, id="host-key-and-delete-confirmed"),
        pytest.param("y\nn\n", True, True, id="host-key-confirmed-plaintext-kept"),
    ],
)
def test_init_prompts(
    cli: Cli,
    tmp_path: Path,
    sshd_server: Sshd,
    remote_dir: Path,
    secret_values: set[str],
    answers: str,
    pinned: bool,
    plaintext_left: bool,
) -> None:
    """Without --yes init asks to pin the host key and to delete the plaintext."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".env").write_text(PLAIN)
    secret_values.update(VALUES.values())
    result = cli("init", "--from", ".env", "--host", sshd_server.host, input=answers, timeout=120)
    assert sshd_server.fingerprint in result.stderr
    assert (result.returncode == 0) is pinned, result.stderr
    assert (tmp_path / "secrets" / "known_hosts").exists() is pinned
    assert (tmp_path / ".sops.yaml").exists() is pinned, "a refused host key writes nothing"
    assert (tmp_path / ".env").exists() is plaintext_left


def test_init_with_a_bad_plaintext_names_the_line_and_writes_nothing(
    cli: Cli, tmp_path: Path, secret_values: set[str]
) -> None:
    """A .env line that does not parse fails init with file:line and key; nothing is written."""
    (tmp_path / ".env").write_text('API_TOKEN=tok_fine_value_1\nBROKEN="unterminated\n')
    secret_values.add("tok_fine_value_1")
    result = cli("init", "--from", ".env", "--yes")
    assert result.returncode == 4
    assert ".env:2" in result.stderr
    assert not (tmp_path / "secrets").exists()
    assert not (tmp_path / ".sops.yaml").exists()


def test_init_with_an_unreachable_host_writes_nothing(
    cli: Cli, tmp_path: Path, secret_values: set[str]
) -> None:
    """When the host key cannot be fetched, init fails (exit 1) before writing anything."""
    (tmp_path / ".env").write_text(PLAIN)
    secret_values.update(VALUES.values())
    result = cli("init", "--from", ".env", "--host", f"127.0.0.1:{free_port()}", "--yes")
    assert result.returncode == 1
    assert "cannot connect" in result.stderr
    assert "README#faq-cannot-connect" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


def test_init_refuses_to_overwrite_without_force(cli: Cli, tmp_path: Path) -> None:
    """A second init names what it would overwrite and stops; --force reuses the age key."""
    assert cli("init").returncode == 0
    key = (tmp_path / "secrets" / "age-key.txt").read_text()
    (tmp_path / ".sops.yaml").write_text(
        "# edited by hand\n" + (tmp_path / ".sops.yaml").read_text()
    )
    edited = (tmp_path / ".sops.yaml").read_text()
    again = cli("init")
    assert again.returncode == 2
    assert ".sops.yaml" in again.stderr
    assert "--force" in again.stderr
    assert (tmp_path / ".sops.yaml").read_text() == edited
    forced = cli("init", "--force")
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / ".sops.yaml").read_text() != edited
    assert (tmp_path / "secrets" / "age-key.txt").read_text() == key, (
        "the age key is never replaced"
    )


def test_init_without_age_keygen_makes_a_key_age_and_sops_accept(
    cli: Cli, tmp_path: Path, sops_bin: str, secret_values: set[str]
) -> None:
    """Without age-keygen on PATH, the Python-generated key is read by age-keygen and sops."""
    (tmp_path / ".env").write_text(PLAIN)
    secret_values.update(VALUES.values())
    result = cli("init", "--from", ".env", "--yes", env={"PATH": str(tmp_path / "empty-bin")})
    assert result.returncode == 0, result.stderr
    key_text = (tmp_path / "secrets" / "age-key.txt").read_text()
    secret_values.add(agekey.identities(key_text)[0])
    assert "# public key: age1" in key_text
    public = subprocess.run(
        ["age-keygen", "-y", str(tmp_path / "secrets" / "age-key.txt")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert public in (tmp_path / ".sops.yaml").read_text()
    assert sops_plaintext(sops_bin, tmp_path / "secrets" / ".env.encrypted", key_text) == VALUES


def test_generated_identity_matches_age_keygen(tmp_path: Path) -> None:
    """agekey.generate() yields an identity whose recipient age-keygen derives identically."""
    identity, public = agekey.generate()
    key_file = tmp_path / "key.txt"
    key_file.write_text(identity + "\n")
    derived = subprocess.run(
        ["age-keygen", "-y", str(key_file)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert derived == public
    assert identity.startswith("AGE-SECRET-KEY-1")


def test_age_keygen_is_on_path() -> None:
    """The tests' reference age-keygen is the real binary (conftest relies on it too)."""
    assert shutil.which("age-keygen")
