"""sops-deploy reaches servers the way `ssh` does, end to end through the CLI: a real
ssh-agent, a real ~/.ssh/config (alias + ProxyJump through a second real sshd), default
identity files, a passphrase-protected key, and — in CI — one secret: the SSH key that
logs in also decrypts a file encrypted for its `ssh-ed25519` recipient."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from dotenv import dotenv_values

from tests.maintaining import sops_plaintext
from tests.proxy import Proxy
from tests.sshagent import Agent
from tests.sshd import Sshd, keygen, make_sshd
from tests.support import AgeIdentity, CliResult, assert_no_secrets

Cli = Callable[..., CliResult]
NO_SSH_KEY = {"SSH_PRIVATE_KEY": ""}  # empty counts as unset


@pytest.fixture
def home(base_env: dict[str, str], tmp_path: Path) -> Path:
    """A fresh HOME with an empty ~/.ssh (no keys, no config)."""
    path = tmp_path / "home"
    (path / ".ssh").mkdir(parents=True)
    return path


def write_config(home: Path, target: Sshd, jump_port: int, jump: Sshd) -> Path:
    """~/.ssh/config with the alias `homeserver` behind the jump host `bastion`, as a user
    would write it; known_hosts where both `ssh` and sops-deploy read it."""
    known = home / ".ssh" / "known_hosts"
    jump_line = jump.known_hosts_line.replace(f":{jump.port} ", f":{jump_port} ", 1)
    known.write_text(target.known_hosts_line + "\n" + jump_line + "\n")
    config = home / ".ssh" / "config"
    config.write_text(
        "Host homeserver\n"
        "    HostName 127.0.0.1\n"
        f"    Port {target.port}\n"
        f"    User {target.user}\n"
        "    ProxyJump bastion\n"
        "\n"
        "Host bastion\n"
        "    HostName 127.0.0.1\n"
        f"    Port {jump_port}\n"
        f"    User {jump.user}\n"
        "\n"
        "Host *\n"
        "    BatchMode yes\n"
        "    StrictHostKeyChecking yes\n"
        f"    UserKnownHostsFile {known}\n"
        f"    IdentityFile {home}/.ssh/id_ed25519\n"  # absent: only the agent can log in
    )
    return config


def test_deploy_to_an_alias_works_where_ssh_works(
    cli: Cli,
    encrypt: Callable[..., Path],
    sshd_server: Sshd,
    jump_sshd: Sshd,
    agent: Agent,
    home: Path,
    remote_dir: Path,
) -> None:
    """`ssh homeserver true` works (agent + alias + ProxyJump); then `sops-deploy deploy
    --host homeserver`, with the same HOME, config and agent, deploys through the bastion."""
    agent.add(sshd_server.client_key)
    hop = Proxy(jump_sshd.port)  # counts the bytes that pass the jump host
    try:
        config = write_config(home, sshd_server, hop.port, jump_sshd)
        env = {**NO_SSH_KEY, "HOME": str(home), **agent.env}
        # OpenSSH takes ~ from the password database, not $HOME: name the config with -F.
        ssh = subprocess.run(
            ["ssh", "-F", str(config), "homeserver", "true"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert ssh.returncode == 0, ssh.stderr
        assert hop.connections == 1
        result = cli(
            "deploy",
            "--file",
            str(encrypt("ALIAS_KEY=through-the-alias-1\nPAD=" + "p" * 40_000 + "\n")),
            "--host",
            "homeserver",
            "--remote-path",
            str(remote_dir / ".env"),
            env=env,
        )
        assert result.returncode == 0, result.stderr
        assert dotenv_values(remote_dir / ".env")["ALIAS_KEY"] == "through-the-alias-1"
        assert hop.connections == 2, "the deploy did not go through the jump host"
        assert hop.upstream_bytes[1] > 40_000
    finally:
        hop.close()


def test_ssh_config_none_ignores_the_alias(
    cli: Cli, encrypt: Callable[..., Path], sshd_server: Sshd, home: Path, remote_dir: Path
) -> None:
    """--ssh-config none: `homeserver` is a plain host name again, which does not resolve."""
    (home / ".ssh" / "config").write_text(
        f"Host homeserver\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n"
    )
    result = cli(
        "deploy",
        "--file",
        str(encrypt("NONE_KEY=never-arrives-2\n")),
        "--host",
        "homeserver",
        "--remote-path",
        str(remote_dir / ".env"),
        "--ssh-config",
        "none",
        "--retries",
        "0",
        env={"HOME": str(home)},
    )
    assert result.returncode == 1
    assert "homeserver" in result.stderr
    assert not os.listdir(remote_dir)


def test_default_identity_file_logs_in(
    cli: Cli,
    encrypt: Callable[..., Path],
    sshd_server: Sshd,
    target_args: list[str],
    home: Path,
    remote_dir: Path,
) -> None:
    """No SSH_PRIVATE_KEY, no agent: ~/.ssh/id_ed25519 logs in, as with `ssh`."""
    shutil.copy(sshd_server.client_key, home / ".ssh" / "id_ed25519")
    shutil.copy(sshd_server.client_key.with_suffix(".pub"), home / ".ssh" / "id_ed25519.pub")
    result = cli(
        "deploy",
        "--file",
        str(encrypt("DEFAULT_ID=from-id-ed25519\n")),
        *target_args,
        env={"SSH_PRIVATE_KEY": "", "HOME": str(home), "SSH_AUTH_SOCK": ""},
    )
    assert result.returncode == 0, result.stderr
    assert dotenv_values(remote_dir / ".env")["DEFAULT_ID"] == "from-id-ed25519"


def test_no_key_anywhere_says_where_it_looked(
    cli: Cli, encrypt: Callable[..., Path], target_args: list[str], home: Path
) -> None:
    result = cli(
        "deploy",
        "--file",
        str(encrypt("X_KEY=nobody-logs-in\n")),
        *target_args,
        env={"SSH_PRIVATE_KEY": "", "HOME": str(home), "SSH_AUTH_SOCK": ""},
    )
    assert result.returncode == 1  # as any per-host failure; no server was touched
    assert "no SSH private key" in result.stderr
    assert "ssh-add" in result.stderr


def test_ci_with_only_the_ssh_key_deploys_a_file_encrypted_for_it(
    base_env: dict[str, str],
    encrypt: Callable[..., Path],
    secret_values: set[str],
    sshd_server: Sshd,
    target_args: list[str],
    home: Path,
    remote_dir: Path,
    tmp_path: Path,
) -> None:
    """On GitHub (GITHUB_ACTIONS=true) with only SSH_PRIVATE_KEY: it logs in and it
    decrypts the file encrypted for its ssh-ed25519 recipient; no AGE_KEY anywhere."""
    public = sshd_server.client_key.with_suffix(".pub").read_text().strip()
    enc = encrypt("ONE_SECRET=ci-needs-one-7\n", recipients=[" ".join(public.split()[:2])])
    env = {**base_env, "AGE_KEY": "", "GITHUB_ACTIONS": "true", "HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "sops_deploy", "deploy", "--file", str(enc), *target_args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert dotenv_values(remote_dir / ".env")["ONE_SECRET"] == "ci-needs-one-7"
    shown = proc.stdout + proc.stderr
    assert "::add-mask::ci-needs-one-7" in shown  # GitHub hides it before anything else
    secret_values.add(sshd_server.client_key.read_text().strip())
    assert_no_secrets(
        "\n".join(ln for ln in shown.splitlines() if not ln.startswith("::add-mask::")),
        secret_values,
    )


def test_passphrase_key_logs_in_and_decrypts(
    cli: Cli,
    encrypt: Callable[..., Path],
    tmp_path: Path,
    remote_dir: Path,
    home: Path,
    secret_values: set[str],
) -> None:
    """An encrypted SSH_PRIVATE_KEY with SSH_PRIVATE_KEY_PASSPHRASE: login and decryption."""
    key = tmp_path / "locked_ed25519"
    public = keygen(key, passphrase="open sesame 31")
    secret_values.update({"open sesame 31", key.read_text().strip()})
    server = make_sshd(tmp_path / "locked", client_key=key)
    try:
        known = tmp_path / "kh"
        known.write_text(server.known_hosts_line + "\n")
        enc = encrypt("LOCKED=opened-with-pass\n", recipients=[" ".join(public.split()[:2])])
        result = cli(
            "deploy",
            "--file",
            str(enc),
            "--host",
            server.host,
            "--remote-path",
            str(remote_dir / ".env"),
            "--known-hosts",
            str(known),
            env={
                "AGE_KEY": "",
                "HOME": str(home),
                "SSH_PRIVATE_KEY": key.read_text(),
                "SSH_PRIVATE_KEY_PASSPHRASE": "open sesame 31",
            },
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    assert dotenv_values(remote_dir / ".env")["LOCKED"] == "opened-with-pass"


def test_sops_age_key_cmd_is_passed_to_sops(
    cli: Cli, encrypt: Callable[..., Path], age_id: AgeIdentity
) -> None:
    """SOPS_AGE_KEY_CMD (sops's own) reaches sops: validate decrypts with no AGE_KEY."""
    key_file = age_id.path
    result = cli(
        "validate",
        "--file",
        str(encrypt("CMD_KEY=from-a-key-command\n")),
        env={"AGE_KEY": "", "SOPS_AGE_KEY_CMD": f"cat {key_file}"},
    )
    assert result.returncode == 0, result.stderr


def test_doctor_shows_what_the_ssh_config_sets_and_which_key_decrypts(
    cli: Cli,
    encrypt: Callable[..., Path],
    sshd_server: Sshd,
    jump_sshd: Sshd,
    agent: Agent,
    home: Path,
) -> None:
    agent.add(sshd_server.client_key)
    config = write_config(home, sshd_server, jump_sshd.port, jump_sshd)
    public = sshd_server.client_key.with_suffix(".pub").read_text().strip()
    enc = encrypt("DOC_KEY=doctor-looks-3\n", recipients=[" ".join(public.split()[:2])])
    result = cli(
        "doctor",
        "--file",
        str(enc),
        "--host",
        "homeserver",
        env={
            "AGE_KEY": "",
            "HOME": str(home),
            "SSH_PRIVATE_KEY": sshd_server.client_key.read_text(),
            **agent.env,
        },
    )
    assert f"HostName 127.0.0.1 ({config} line 2)" in result.stdout, result.stdout
    assert f"ProxyJump bastion ({config} line 5)" in result.stdout
    assert "decrypts with SSH_PRIVATE_KEY (ssh-ed25519" in result.stdout
    assert "✓ host homeserver" in result.stdout, result.stdout


def test_start_up_never_imports_invoke(
    base_env: dict[str, str],
    encrypt: Callable[..., Path],
    sshd_server: Sshd,
    home: Path,
    remote_dir: Path,
    tmp_path: Path,
) -> None:
    """A deploy through an alias whose User comes from a `Match exec` block loads Paramiko
    but never `invoke` (which Paramiko imports only to run `Match exec` itself)."""
    enc = encrypt("PROBE=1234567\n")
    (home / ".ssh" / "known_hosts").write_text(sshd_server.known_hosts_line + "\n")
    (home / ".ssh" / "config").write_text(
        f"Host probe\n  HostName 127.0.0.1\n  Port {sshd_server.port}\n"
        f'Match exec "test %h = 127.0.0.1"\n  User {sshd_server.user}\n'
    )
    target_args = ["--host", "probe", "--remote-path", str(remote_dir / ".env")]
    probe = (
        "import json, sys\nfrom sops_deploy.cli import entrypoint\n"
        "try:\n    entrypoint()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "loaded = sorted(name for name, module in sys.modules.items() if module is not None)\n"
        "print(json.dumps({'code': code, 'modules': loaded}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, "deploy", "--dry-run", "--file", str(enc), *target_args],
        env={**base_env, "HOME": str(home)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    answer = json.loads(proc.stdout.splitlines()[-1])
    assert answer["code"] == 0, proc.stderr
    assert "paramiko" in answer["modules"]
    assert "invoke" not in answer["modules"]


def test_init_ssh_recipient_makes_the_deploy_key_the_only_ci_secret(
    cli: Cli,
    sshd_server: Sshd,
    target_args: list[str],
    home: Path,
    remote_dir: Path,
    tmp_path: Path,
) -> None:
    """`init --ssh-recipient deploy.pub`: .sops.yaml and the file list the SSH key, the
    workflow asks for SSH_PRIVATE_KEY only, and a deploy with only that key works."""
    import yaml

    (tmp_path / ".env").write_text("INIT_SSH=made-by-init-5\n")
    pub = sshd_server.client_key.with_suffix(".pub")
    result = cli("init", "--from", ".env", "--ssh-recipient", str(pub), "--yes")
    assert result.returncode == 0, result.stderr
    line = " ".join(pub.read_text().split()[:2])
    rules = yaml.safe_load((tmp_path / ".sops.yaml").read_text())["creation_rules"]
    assert line in rules[0]["age"]
    workflow = yaml.safe_load((tmp_path / ".github/workflows/deploy-secrets.yml").read_text())
    inputs = workflow["jobs"]["deploy"]["steps"][1]["with"]
    assert "age-key" not in inputs
    assert inputs["ssh-key"] == "${{ secrets.SSH_PRIVATE_KEY }}"
    assert "gh secret set AGE_KEY" not in result.output
    deployed = cli(
        "deploy",
        "--file",
        "secrets/.env.encrypted",
        *target_args,
        env={"AGE_KEY": "", "HOME": str(home), "GITHUB_ACTIONS": ""},
    )
    assert deployed.returncode == 0, deployed.stderr
    assert dotenv_values(remote_dir / ".env")["INIT_SSH"] == "made-by-init-5"


def test_recipients_add_takes_an_ssh_key(
    cli: Cli,
    sshd_server: Sshd,
    target_args: list[str],
    home: Path,
    remote_dir: Path,
    tmp_path: Path,
) -> None:
    """`recipients add "ssh-ed25519 AAAA…"` re-keys the files; the SSH key then decrypts."""
    (tmp_path / ".env").write_text("LATER_SSH=added-later-6\n")
    assert cli("init", "--from", ".env", "--yes").returncode == 0
    key_file = tmp_path / "secrets" / "age-key.txt"
    line = " ".join(sshd_server.client_key.with_suffix(".pub").read_text().split()[:2])
    added = cli("recipients", "add", line, env={"AGE_KEY": key_file.read_text()})
    assert added.returncode == 0, added.stderr
    deployed = cli(
        "deploy", "--file", "secrets/.env.encrypted", *target_args,
        env={"AGE_KEY": "", "HOME": str(home)},
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    assert dotenv_values(remote_dir / ".env")["LATER_SSH"] == "added-later-6"


def test_rotate_and_recipients_work_with_sops_age_key_cmd(
    cli: Cli, sops_bin: str, other_age_id: AgeIdentity, secret_values: set[str], tmp_path: Path
) -> None:
    """With only SOPS_AGE_KEY_CMD (no AGE_KEY), `rotate` changes a value and `recipients
    add` re-keys the file: sops runs the command itself each time."""
    import yaml

    (tmp_path / ".env").write_text("CMD_ROTATED=before-rotation-1\n")
    assert cli("init", "--from", ".env", "--yes").returncode == 0
    key_file = tmp_path / "secrets" / "age-key.txt"
    env = {"AGE_KEY": "", "SOPS_AGE_KEY_CMD": f"cat {key_file}"}
    rotated = cli(
        "rotate", "CMD_ROTATED", "--value-stdin", "--file", "secrets/.env.encrypted",
        env=env, input="after-rotation-2",
    )  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    added = cli("recipients", "add", other_age_id.public, env=env)
    assert added.returncode == 0, added.stderr
    rules = yaml.safe_load((tmp_path / ".sops.yaml").read_text())["creation_rules"]
    assert other_age_id.public in rules[0]["age"]
    # the new recipient alone now opens the file, and sees the rotated value
    secret_values.update({"before-rotation-1", "after-rotation-2"})
    opened = sops_plaintext(sops_bin, tmp_path / "secrets/.env.encrypted", other_age_id.secret)
    assert opened["CMD_ROTATED"] == "after-rotation-2"
