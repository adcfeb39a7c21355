"""The masking policy on a runner: real `act` runs tests/workflows/masking-test.yml
(`uses: ./`) against the test sshd (see tests/test_action.py for how act runs here)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.sshd import Sshd
from tests.support import AgeIdentity, assert_no_secrets
from tests.test_action import run_act

WORKFLOW = "tests/workflows/masking-test.yml"
SECRET_TOKEN = "tok_mask_4d3e2f1a0b"
SECRET_PASSWORD = "Pw-9x!masked"


@pytest.mark.act
@pytest.mark.slow
def test_public_values_reach_later_steps_and_secret_lines_stay_masked(
    encrypt: Callable[..., Path],
    sshd_server: Sshd,
    remote_dir: Path,
    age_id: AgeIdentity,
    tmp_path: Path,
) -> None:
    """DEBUG=true, WORKERS=2 and LAN_IP (the server's address, `# public`) leave
    `changed`, `hosts` and `hosts-json` intact; the secret lines are masked in the log."""
    plain = (
        f"DEBUG=true\nWORKERS=2\nLAN_IP=127.0.0.1\nAPI_TOKEN={SECRET_TOKEN}\n"
        f"DB_PASSWORD={SECRET_PASSWORD}\n"
    )
    enc = encrypt(plain, guard=False)
    schema = tmp_path / ".env.example"
    schema.write_text("DEBUG=\nWORKERS=\nLAN_IP=  # public: the server's own address\n")
    known = tmp_path / "known_hosts"
    known.write_text(sshd_server.known_hosts_line + "\n")
    inputs = {
        "host": sshd_server.host,
        "remote-path": str(remote_dir / ".env"),
        "known-hosts": str(known),
        "file": str(enc),
        "schema": str(schema),
    }
    secrets = {
        "AGE_KEY": age_id.secret,
        "SSH_PRIVATE_KEY": sshd_server.client_key.read_text(),
    }
    output = _act(inputs, secrets, tmp_path)
    assert_no_secrets(
        output, {SECRET_TOKEN, SECRET_PASSWORD, age_id.secret, secrets["SSH_PRIVATE_KEY"]}
    )
    outputs = dict(re.findall(r"\| OUTPUT ([a-z-]+)=(.*)$", output, re.M))
    assert outputs["changed"] == "true"  # and the `if: ... == 'true'` step ran
    assert outputs["hosts"] == sshd_server.host
    assert json.loads(outputs["hosts-json"])[0]["host"] == sshd_server.host
    deployed = dict(re.findall(r"\| DEPLOYED (\w+)=(.*)$", output, re.M))
    assert deployed["DEBUG"] == "'true'"
    assert deployed["LAN_IP"] == "'127.0.0.1'"
    assert deployed["WORKERS"] == "'2'"
    assert deployed["API_TOKEN"] == "'***'"
    assert deployed["DB_PASSWORD"] == "'***'"
    assert "Skip output" not in output


def _act(inputs: dict[str, str], secrets: dict[str, str], tmp_path: Path) -> str:
    run = run_act(WORKFLOW, tmp_path / "act-cache", tmp_path, inputs, secrets)
    assert run.returncode == 0, run.output[-4000:]
    return run.output
