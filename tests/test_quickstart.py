"""The README's quickstart, run as the README writes it (init → deploy → check → rotate →
doctor) on a realistic 17-key homelab .env against the test sshd; and init asking which
program reads the file, recorded as `format:` in secrets/sops-deploy.yaml."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from sops_deploy.inputs import configfile
from sops_deploy.sops import agekey
from tests import readers
from tests.maintaining import printed_deploy_command
from tests.sshd import Sshd
from tests.support import REPO, assert_no_secrets

PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIHomeLabTlsKeyNotRealAtAllJustForTheQuickstart=\n"
    "-----END PRIVATE KEY-----"
)
HOMELAB = f"""# homelab: nextcloud + postgres + redis behind a reverse proxy
TZ=Europe/Berlin
PUID=1000
PGID=1000
DOMAIN=home.example.net
POSTGRES_USER=nextcloud
POSTGRES_PASSWORD='Tr0ub4dor&$3cr3t$HOME'
POSTGRES_DB=nextcloud_db
REDIS_PASSWORD=r3d1s-Sup3r-S3cret-77
JWT_SECRET=c2VjcmV0LWp3dC1zaWduaW5nLWtleQ==
WEBHOOK_URL=https://hooks.example.net/notify?a=1&b=2
SMTP_HOST=smtp.example.net
SMTP_PASSWORD="mail pass with spaces # not a comment"
OPTIONAL_API_KEY=
S3_ACCESS_KEY=AKIAEXAMPLE0000TEST
S3_SECRET_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
TLS_PRIVATE_KEY="{PEM}"
APP_ENV=production
"""
README_HOST, README_PATH = "deploy@homeserver:22", "/srv/app/.env"


def homelab_values() -> dict[str, str]:
    parsed = dotenv_values(stream=io.StringIO(HOMELAB), interpolate=False)
    return {k: v or "" for k, v in parsed.items()}


def quickstart_commands() -> list[str]:
    """Every `sops-deploy …` command the README's quickstart section spells out."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    spans = re.findall(r"`([^`]*sops-deploy (?:init|rotate|doctor|deploy) [^`]*)`", section)
    return [" ".join(span.split()) for span in spans]


@pytest.fixture
def compose_read() -> Iterator[readers.Reader]:
    with readers.go_reader("composeparse") as read:
        yield read


@pytest.fixture
def user_env(tmp_path: Path, sshd_server: Sshd, sops_bin: str) -> dict[str, str]:
    """A newcomer's shell: sops-deploy on PATH, ~/.ssh/id_ed25519 their key, no secrets in
    the environment (the commands bring their own); the pinned sops named for the test."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = home / ".ssh" / "id_ed25519"
    key.write_text(sshd_server.client_key.read_text())
    key.chmod(0o600)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOPS_", "AGE_", "SSH_", "GITHUB_", "RUNNER_"))
    }
    env.update(
        HOME=str(home),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        SOPS_DEPLOY_SOPS=sops_bin,
    )
    return env


def shell(
    command: str, env: dict[str, str], cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_the_readme_quickstart_works_on_a_homelab_env(
    tmp_path: Path,
    sshd_server: Sshd,
    user_env: dict[str, str],
    compose_read: readers.Reader,
    secret_values: set[str],
) -> None:
    """init → deploy → check → rotate → deploy → doctor, each as the README writes it."""
    values = homelab_values()
    assert len(values) == 17
    secret_values.update(v for v in values.values() if len(v) >= 4)
    secret_values.update(PEM.splitlines())
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".env").write_text(HOMELAB)
    remote = tmp_path / "srv" / ".env"
    remote.parent.mkdir()

    def ours(command: str) -> str:
        return command.replace(README_HOST, sshd_server.host).replace(README_PATH, str(remote))

    commands = quickstart_commands()
    init = next(c for c in commands if c.startswith("sops-deploy init "))
    rotate = next(c for c in commands if " sops-deploy rotate " in c)
    doctor = next(c for c in commands if " sops-deploy doctor " in c)

    done = shell(ours(init), user_env, repo, stdin="y\ny\n")  # pin the host key; delete .env
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    secret_values.add(agekey.identities((repo / "secrets/age-key.txt").read_text())[0])
    assert not (repo / ".env").exists(), "step 2: init deleted the plaintext when asked"
    config = yaml.safe_load((repo / "secrets/sops-deploy.yaml").read_text())
    assert config["defaults"]["format"] == "compose"

    # the line as printed, pasted into a shell (~ expands there)
    deploy = next(x.strip() for x in done.stdout.splitlines() if "sops-deploy deploy " in x)
    assert shlex.split(deploy)[1:] == printed_deploy_command(done.stdout)
    deployed = shell(deploy, user_env, repo)
    assert deployed.returncode == 0, deployed.stderr
    answer = compose_read(remote)
    assert "error" not in answer, answer
    assert answer["env"] == values, "compose-go reads exactly what the .env held"

    checked = shell(deploy.replace("sops-deploy deploy ", "sops-deploy check ", 1), user_env, repo)
    assert checked.returncode == 0, checked.stderr

    rotated = shell(rotate, user_env, repo)
    assert rotated.returncode == 0, rotated.stderr
    redeployed = shell(deploy, user_env, repo)
    assert redeployed.returncode == 0, redeployed.stderr
    after = compose_read(remote)["env"]
    assert set(after) == {*values, "API_TOKEN"}
    assert {k: after[k] for k in values} == values
    secret_values.add(after["API_TOKEN"])

    doctored = shell(ours(doctor), user_env, repo)
    assert doctored.returncode == 0, doctored.stdout + doctored.stderr
    assert "all checks passed" in doctored.stdout
    assert "! format" not in doctored.stdout
    everything = "".join(
        r.stdout + r.stderr for r in (done, deployed, checked, rotated, redeployed, doctored)
    )
    assert_no_secrets(everything, secret_values)


def converse(
    argv: list[str], env: dict[str, str], cwd: Path, answers: list[tuple[str, str]]
) -> tuple[int, str]:
    """Run `argv` on a pseudo-terminal, typing each answer when its prompt appears."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out, pending, deadline = "", list(answers), time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            readable, _, _ = select.select([master], [], [], 0.2)
            if readable:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk.decode("utf-8", "replace")
            if pending and pending[0][0] in out:
                os.write(master, (pending.pop(0)[1] + "\n").encode())
                out += "\n"
            if proc.poll() is not None and not readable:
                break
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, out.replace("\r\n", "\n")


def test_init_asks_which_program_reads_the_file_in_a_terminal(
    tmp_path: Path, sshd_server: Sshd, user_env: dict[str, str]
) -> None:
    """In a terminal, init lists the readers and records the one chosen as `format:`."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".env").write_text("APP_SECRET='a$b-quickstart-91'\n")
    code, out = converse(
        [sys.executable, "-m", "sops_deploy", "init", "--from", ".env", "--host", sshd_server.host],
        user_env,
        tmp_path,
        [("Pin it? [y/N]", "y"), ("Number 1-6:", "2"), ("[y/N]", "n")],
    )
    assert code == 0, out
    assert "Which program reads the deployed file?" in out
    assert "2. a Python or Ruby app that loads it with dotenv" in out
    assert "wrote secrets/sops-deploy.yaml (format: dotenv)" in out
    loaded = configfile.load(str(tmp_path / "secrets/sops-deploy.yaml"))
    assert loaded.defaults["format"] == "dotenv"
    assert set(loaded.environments) == {"production"}
    assert "a$b-quickstart-91" not in out


def test_init_without_a_format_outside_a_terminal_warns_and_doctor_flags_it(
    tmp_path: Path, sshd_server: Sshd, user_env: dict[str, str]
) -> None:
    """No terminal, no --format: init warns and records none; doctor marks it with `!`.
    The nearest valid input, --format dotenv, records it and doctor shows a ✓."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".env").write_text("APP_SECRET=quickstart-value-92\n")
    base = f"sops-deploy init --from .env --host {sshd_server.host} --yes"
    first = shell(base, user_env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "no --format given" in first.stderr
    assert "format:" not in yaml.safe_dump(
        configfile.load(str(tmp_path / "secrets/sops-deploy.yaml")).defaults
    )
    key = (tmp_path / "secrets/age-key.txt").read_text()
    doctor = f"sops-deploy doctor --host {sshd_server.host} --known-hosts secrets/known_hosts"
    flagged = shell(doctor, {**user_env, "AGE_KEY": key}, tmp_path)
    assert flagged.returncode == 0, flagged.stdout
    line = next(x for x in flagged.stdout.splitlines() if x.startswith(("! format", "✓ format")))
    assert line.startswith("! format: no format chosen"), flagged.stdout
    assert "fix:" in flagged.stdout.split(line, 1)[1].splitlines()[1]

    (tmp_path / "secrets/sops-deploy.yaml").unlink()
    second = shell(base + " --force --format dotenv", user_env, tmp_path)
    assert second.returncode == 0, second.stderr
    fine = shell(doctor, {**user_env, "AGE_KEY": key}, tmp_path)
    assert "✓ format: dotenv" in fine.stdout, fine.stdout
