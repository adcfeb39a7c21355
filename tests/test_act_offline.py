"""The offline act recipe of docs/first-steps.md, run as the page writes it: init's own
workflow, the action from a local checkout (`--local-repository`), its wheels from a
directory, sops from act's tool cache — inside a network namespace that has nothing but
loopback, against an sshd started in it. A clone or a download would fail there."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, assert_no_secrets
from tests.test_action import ACT, wheelhouse
from tests.test_tool_trust import FAKE_GO

DOC = REPO / "docs" / "first-steps.md"
PLAIN = "DATABASE_URL=postgres://app:Offline-Pw-31@db/app\nAPI_TOKEN=tok_offline_5e4d3c\n"

# Runs inside `unshare -n`: loopback up, an sshd, the documented act command, the result.
CHILD = r"""
import json, os, subprocess, sys
from pathlib import Path
from tests.sshd import make_sshd

root, repo, home, block = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
env = json.loads(sys.argv[5])
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
server = make_sshd(root / "sshd")
try:
    (home / ".ssh").mkdir(exist_ok=True)
    (home / ".ssh" / "id_ed25519").write_text(server.client_key.read_text())
    (repo / "secrets" / "known_hosts").write_text(server.known_hosts_line + "\n")
    command = block.replace("deploy@homeserver:22", server.host)
    proc = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    print(json.dumps({"rc": proc.returncode, "out": proc.stdout + proc.stderr,
                      "key": server.client_key.read_text()}))
finally:
    server.stop()
"""


def doc_blocks() -> list[str]:
    section = DOC.read_text().split("## Run the workflow locally", 1)[1]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


@pytest.mark.act
@pytest.mark.slow
def test_the_offline_act_recipe_runs_as_documented(
    tmp_path: Path, sops_bin: str, secret_values: set[str]
) -> None:
    """No network at all: the workflow init wrote deploys through act, exactly."""
    if shutil.which("unshare") is None or not ACT.exists():
        pytest.skip("needs unshare and act")
    setup, run = doc_blocks()
    home, repo, remote = tmp_path / "home", tmp_path / "repo", tmp_path / "srv" / ".env"
    for d in (home, repo, remote.parent):
        d.mkdir(parents=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "go").write_text(FAKE_GO.format(version="3.13.2"))
    (bindir / "go").chmod(0o755)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOPS_", "AGE_", "SSH_", "GITHUB_", "GH_", "RUNNER_", "XDG_"))
    }
    env.update(
        HOME=str(home),
        XDG_STATE_HOME=str(tmp_path / "state"),
        PATH=f"{bindir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
    )
    # The online part of the setup, done from this checkout: the action's files and wheels.
    checkout = home / "src" / "sops-deploy"
    checkout.mkdir(parents=True)
    for name in ("action.yml", "pyproject.toml", "README.md", "requirements", "setup", "src"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, checkout / name)
    shutil.copytree(wheelhouse(), checkout / "wheels")
    assert "git clone" in setup
    assert "pip download" in setup
    install = next(line for line in setup.splitlines() if "tools install" in line)
    tool_env = {
        **env,
        "SOPS_DEPLOY_SOURCE": "go",  # offline: the fake go stands in for the download
        "FAKE_GO_PID": str(tmp_path / "go.pid"),
        "FAKE_GO_SLEEP": "0",
        "REAL_SOPS": sops_bin,
    }
    installed = subprocess.run(
        ["bash", "-c", install], env=tool_env, capture_output=True, text=True, check=False
    )
    assert installed.returncode == 0, installed.stderr

    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".env").write_text(PLAIN)
    secret_values.update({"postgres://app:Offline-Pw-31@db/app", "tok_offline_5e4d3c"})
    init = subprocess.run(
        [
            sys.executable,
            "-m",
            "sops_deploy",
            "init",
            "--from",
            ".env",
            "--yes",
            "--remote-path",
            str(remote),
            "--format",
            "dotenv",
            "--delete-plaintext",
        ],
        env={**env, "SOPS_DEPLOY_SOPS": sops_bin},
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    key = (repo / "secrets" / "age-key.txt").read_text()
    secret_values.add(next(x for x in key.splitlines() if x.startswith("AGE-SECRET-KEY-")))

    child = subprocess.run(
        [
            "unshare",
            "-n",
            sys.executable,
            "-c",
            CHILD,
            str(tmp_path),
            str(repo),
            str(home),
            run,
            json.dumps(env),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    secret_values.add(result["key"].strip())
    assert result["rc"] == 0, result["out"][-4000:]
    assert "Job succeeded" in result["out"]
    assert_no_secrets(result["out"], secret_values)
    from dotenv import dotenv_values

    assert dotenv_values(remote) == {
        "DATABASE_URL": "postgres://app:Offline-Pw-31@db/app",
        "API_TOKEN": "tok_offline_5e4d3c",
    }


def test_the_readme_act_command_is_the_tested_one() -> None:
    """The README's short act recipe uses the same flags as the tested one on the docs page."""
    readme = (REPO / "README.md").read_text().split("**Testing the workflow locally", 1)[1]
    block = re.findall(r"```sh\n(.*?)```", readme, re.S)[0]
    tested = " ".join(doc_blocks()[1].replace("\\\n", " ").split())
    for line in block.replace("\\\n", "\n").splitlines():
        assert " ".join(line.split()) in tested, line
