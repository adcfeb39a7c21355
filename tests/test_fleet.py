"""Fleets: one environment of sops-deploy.yaml deployed to eight real sshd, drift and fan-out.

Every "server" is a real OpenSSH sshd on 127.0.0.1 chrooted to its own directory, so the
same `/srv/app/.env` is a different file on each, as on separate machines.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from dotenv import dotenv_values

from sops_deploy.deploy import rollout
from sops_deploy.deploy.delivery import UNPARSEABLE, HostResult
from sops_deploy.deploy.rollout import SKIPPED_NOTE
from sops_deploy.errors import RemoteError
from sops_deploy.inputs.runinfo import RunInfo
from sops_deploy.inputs.settings import HostSpec, Settings, parse_host
from sops_deploy.interrupt import Cancel
from sops_deploy.output import mdsafe
from sops_deploy.output.reporter import Reporter
from sops_deploy.plan.build import Plan
from tests.sshd import Sshd, free_port
from tests.support import CliResult, FleetHost

pytestmark = pytest.mark.slow

REMOTE = "/srv/app/.env"
COMMON = "DATABASE_URL=postgres://fleet-db/app\nGREETING=hello from common\nLOG_LEVEL=debug\n"
PRODUCTION = "API_TOKEN=prod-token-7f3a9c\nLOG_LEVEL=warning\n"
EXPECTED = {
    "DATABASE_URL": "postgres://fleet-db/app",
    "GREETING": "hello from common",
    "LOG_LEVEL": "warning",
    "API_TOKEN": "prod-token-7f3a9c",
}

Cli = Callable[..., CliResult]


def write_config(tmp_path: Path, hosts: list[str], fleet: list[FleetHost]) -> Path:
    """A sops-deploy.yaml with a `production` environment over `hosts`, all host keys pinned."""
    known = tmp_path / "known_hosts"
    known.write_text("".join(h.sshd.known_hosts_line + "\n" for h in fleet))
    config = tmp_path / "sops-deploy.yaml"
    listed = "".join(f"      - {h}\n" for h in hosts)
    config.write_text(
        "version: 1\n"
        "defaults:\n"
        "  known-hosts: known_hosts\n"
        "  files: [common.env.encrypted]\n"
        "environments:\n"
        "  production:\n"
        "    files: [common.env.encrypted, production.env.encrypted]\n"
        f"    remote-path: {REMOTE}\n"
        "    retries: 0\n"
        "    timeout: 60\n"
        "    hosts:\n" + listed
    )
    return config


@pytest.fixture
def production(
    encrypt: Callable[..., Path], tmp_path: Path, fleet_hosts: list[FleetHost]
) -> list[str]:
    """`--config` and `--env` for a production environment over the whole fleet."""
    encrypt(COMMON, name="common.env.encrypted")
    encrypt(PRODUCTION, name="production.env.encrypted")
    config = write_config(tmp_path, [h.sshd.host for h in fleet_hosts], fleet_hosts)
    return ["--config", str(config), "--env", "production"]


def key_table(stdout: str) -> set[tuple[str, str, str]]:
    """The (host, key, difference) rows of the drift table that check/diff print."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"host\s+key\s+difference", line))
    rows = set()
    for line in lines[start + 1 :]:
        if not line.strip() or line.startswith("(added / removed / changed"):
            break
        host, key, what = re.split(r"\s{2,}", line.strip(), maxsplit=2)
        rows.add((host, key, what))
    return rows


def host_statuses(stdout: str) -> dict[str, str]:
    """host → result, from the per-host result table."""
    lines = stdout.splitlines()
    start = next(
        i for i, line in enumerate(lines) if re.match(r"host\s+path\s+result\s+time", line)
    )
    out = {}
    for line in lines[start + 1 :]:
        if re.match(r"\d+ host\(s\):", line):
            break
        host, _path, status = line.split()[:3]
        out[host] = status
    return out


def edit_by_hand(path: Path, key: str, value: str | None) -> None:
    """What an operator does on a server: change (or, with None, delete) one line in place."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith(f"{key}=")]
    if value is not None:
        lines.append(f"{key}={value}")
    path.write_text("\n".join(lines) + "\n")


def test_environment_deploys_to_every_host_in_parallel(
    cli: Cli, production: list[str], fleet_hosts: list[FleetHost]
) -> None:
    """`deploy --env production` writes the merged file, 0600, to all eight servers."""
    result = cli("deploy", *production, "--parallel", "8")
    assert result.returncode == 0, result.output
    for host in fleet_hosts:
        written = host.path(REMOTE)
        assert dotenv_values(written) == EXPECTED
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert host_statuses(result.stdout) == {str_host(h): "changed" for h in fleet_hosts}
    assert f"{len(fleet_hosts)} host(s): {len(fleet_hosts)} changed" in result.stdout

    again = cli("deploy", *production)
    assert again.returncode == 0, again.output
    assert set(host_statuses(again.stdout).values()) == {"unchanged"}


def str_host(host: FleetHost) -> str:
    """How the result table names a host: user@host:port."""
    return host.sshd.host


def test_overlays_resolve_in_order(
    cli: Cli, encrypt: Callable[..., Path], tmp_path: Path, fleet_hosts: list[FleetHost]
) -> None:
    """Later files override earlier ones: `files: [production, common]` lets common win."""
    encrypt(COMMON, name="common.env.encrypted")
    encrypt(PRODUCTION, name="production.env.encrypted")
    host = fleet_hosts[0]
    config = write_config(tmp_path, [host.sshd.host], fleet_hosts)
    config.write_text(
        config.read_text().replace(
            "[common.env.encrypted, production.env.encrypted]",
            "[production.env.encrypted, common.env.encrypted]",
        )
    )
    result = cli("deploy", "--config", str(config), "--env", "production")
    assert result.returncode == 0, result.output
    assert dotenv_values(host.path(REMOTE)) == {**EXPECTED, "LOG_LEVEL": "debug"}


def test_flags_override_the_environment(
    cli: Cli, production: list[str], fleet_hosts: list[FleetHost]
) -> None:
    """`--host` and `--remote-path` replace the environment's: one matrix job, one host."""
    one = fleet_hosts[2]
    result = cli("deploy", *production, "--host", one.sshd.host, "--remote-path", "/srv/app/x.env")
    assert result.returncode == 0, result.output
    assert dotenv_values(one.path("/srv/app/x.env")) == EXPECTED
    assert [h for h in fleet_hosts if h.path("/srv/app/x.env").exists()] == [one]
    assert not any(h.path(REMOTE).exists() for h in fleet_hosts)


@pytest.fixture
def with_unreachable(
    encrypt: Callable[..., Path], tmp_path: Path, fleet_hosts: list[FleetHost]
) -> tuple[list[str], str]:
    """A production environment whose first host is a closed port on 127.0.0.1."""
    encrypt(COMMON, name="common.env.encrypted")
    encrypt(PRODUCTION, name="production.env.encrypted")
    dead = f"{fleet_hosts[0].sshd.user}@127.0.0.1:{free_port()}"
    config = write_config(tmp_path, [dead, *(h.sshd.host for h in fleet_hosts)], fleet_hosts)
    return ["--config", str(config), "--env", "production"], dead


def test_unreachable_host_fails_but_every_other_host_is_deployed(
    cli: Cli, with_unreachable: tuple[list[str], str], fleet_hosts: list[FleetHost]
) -> None:
    """Default (continue): the dead host fails, all others are written, exit 1 at the end."""
    args, dead = with_unreachable
    result = cli("deploy", *args, "--parallel", "1")
    assert result.returncode == 1, result.output
    statuses = host_statuses(result.stdout)
    assert statuses.pop(dead) == "failed"
    assert statuses == {str_host(h): "changed" for h in fleet_hosts}
    assert all(dotenv_values(h.path(REMOTE)) == EXPECTED for h in fleet_hosts)


def test_fail_fast_starts_no_host_after_a_failure(
    cli: Cli, with_unreachable: tuple[list[str], str], fleet_hosts: list[FleetHost]
) -> None:
    """`--fail-fast`: after the dead host fails, the hosts not yet started are skipped."""
    args, dead = with_unreachable
    result = cli("deploy", *args, "--parallel", "1", "--fail-fast")
    assert result.returncode == 1, result.output
    statuses = host_statuses(result.stdout)
    assert statuses.pop(dead) == "failed"
    assert statuses == {str_host(h): "skipped" for h in fleet_hosts}
    assert not any(h.path(REMOTE).exists() for h in fleet_hosts)


def test_check_names_exactly_the_hand_edited_keys_on_exactly_those_hosts(
    cli: Cli, production: list[str], fleet_hosts: list[FleetHost], secret_values: set[str]
) -> None:
    """After edits by hand on two servers, `check` exits 3 with one row per differing key."""
    assert cli("deploy", *production).returncode == 0
    assert cli("check", *production).returncode == 0
    secret_values.update({"edited-by-hand-1234", "stray-value-5678"})
    edit_by_hand(fleet_hosts[3].path(REMOTE), "API_TOKEN", "edited-by-hand-1234")
    edit_by_hand(fleet_hosts[5].path(REMOTE), "GREETING", None)
    edit_by_hand(fleet_hosts[5].path(REMOTE), "HAND_ADDED", "stray-value-5678")

    result = cli("check", *production)
    assert result.returncode == 3, result.output
    assert key_table(result.stdout) == {
        (str_host(fleet_hosts[3]), "API_TOKEN", "changed"),
        (str_host(fleet_hosts[5]), "GREETING", "added"),
        (str_host(fleet_hosts[5]), "HAND_ADDED", "removed"),
    }
    drifted = {str_host(fleet_hosts[3]), str_host(fleet_hosts[5])}
    statuses = host_statuses(result.stdout)
    assert {h for h, s in statuses.items() if s == "drift"} == drifted
    assert {h for h, s in statuses.items() if s == "in-sync"} == {
        str_host(h) for h in fleet_hosts
    } - drifted


def test_check_reports_mode_drift(
    cli: Cli, production: list[str], fleet_hosts: list[FleetHost]
) -> None:
    """A chmod 644 on one server is drift: `check` exits 3 and names the mode, no keys."""
    assert cli("deploy", *production).returncode == 0
    os.chmod(fleet_hosts[6].path(REMOTE), 0o644)
    result = cli("check", *production)
    assert result.returncode == 3, result.output
    assert key_table(result.stdout) == {
        (str_host(fleet_hosts[6]), "(file mode)", "0644 instead of 0600")
    }


def test_diff_reports_drift_and_exits_0(
    cli: Cli, production: list[str], fleet_hosts: list[FleetHost], secret_values: set[str]
) -> None:
    """`diff` prints the same per-key table as `check` but exits 0; nothing is written."""
    assert cli("deploy", *production).returncode == 0
    secret_values.add("edited-by-hand-9999")
    target = fleet_hosts[1].path(REMOTE)
    edit_by_hand(target, "DATABASE_URL", "edited-by-hand-9999")
    before = target.read_bytes()
    result = cli("diff", *production)
    assert result.returncode == 0, result.output
    assert key_table(result.stdout) == {(str_host(fleet_hosts[1]), "DATABASE_URL", "changed")}
    assert target.read_bytes() == before


def test_check_of_a_file_broken_by_hand_is_drift(
    cli: Cli, production: list[str], fleet_hosts: list[FleetHost]
) -> None:
    """A server file that no longer parses drifts as a whole; no key is invented."""
    assert cli("deploy", *production).returncode == 0
    with fleet_hosts[4].path(REMOTE).open("a") as fh:
        fh.write("this line is not dotenv\n")
    result = cli("check", *production)
    assert result.returncode == 3, result.output
    assert key_table(result.stdout) == {(str_host(fleet_hosts[4]), UNPARSEABLE, "changed")}


def test_check_of_a_never_deployed_fleet_lists_every_key_as_added(
    cli: Cli, production: list[str], fleet_hosts: list[FleetHost]
) -> None:
    """A server without the file drifts by every key the deploy would add."""
    result = cli("check", *production, "--host", fleet_hosts[0].sshd.host)
    assert result.returncode == 3, result.output
    assert key_table(result.stdout) == {
        (str_host(fleet_hosts[0]), key, "added") for key in EXPECTED
    }


def test_hosts_json_lists_the_environment_for_a_matrix(
    cli: Cli, production: list[str], fleet_hosts: list[FleetHost]
) -> None:
    """`hosts --json` prints one {host, name} per host, in order, without decrypting."""
    result = cli("hosts", "--json", *production, env={"AGE_KEY": ""})
    assert result.returncode == 0, result.output
    assert json.loads(result.stdout) == [
        {"host": h.sshd.host, "name": f"127.0.0.1:{h.sshd.port}"} for h in fleet_hosts
    ]
    plain = cli("hosts", *production)
    assert plain.stdout.split() == [h.sshd.host for h in fleet_hosts]


def test_job_summary_has_the_host_and_key_tables(tmp_path: Path) -> None:
    """On GitHub the step summary gets one row per host and one per differing key or failure."""
    summary = tmp_path / "summary.md"
    out, err = io.StringIO(), io.StringIO()
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    reporter = Reporter(out=out, err=err, env=env)
    plan = Plan({}, b"A=1\n", "compose")
    drift = HostResult("deploy@web1:22", "drift", "/srv/app/.env", changed=["API_TOKEN"])
    drift.mode_before, drift.mode_after = 0o644, 0o600
    failed = HostResult("deploy@web2:22", "failed", error=RemoteError("web2: connection refused"))
    skipped = HostResult("deploy@web3:22", "skipped", note=SKIPPED_NOTE)
    reporter.summary("check", plan, [drift, failed, skipped])
    text = summary.read_text()
    assert "| `deploy@web1:22` | ⚠️ drift |" in text
    refused = mdsafe.text("web2: connection refused")  # server text: inert Markdown
    assert f"| `deploy@web2:22` | ❌ failed: {refused} |" in text
    assert "added: in the encrypted file, missing on the host" in text  # the legend
    assert "| `deploy@web1:22` | `API_TOKEN` | changed |" in text
    assert "| `deploy@web1:22` | `(file mode)` | 0644 instead of 0600 |" in text
    assert f"| `deploy@web2:22` | – | failed: {refused} |" in text
    assert f"| `deploy@web3:22` | – | skipped: {mdsafe.text(SKIPPED_NOTE)} |" in text
    assert "3 host(s): 1 drift, 1 failed, 1 skipped" in out.getvalue()
    annotations = [line for line in out.getvalue().splitlines() if line.startswith("::error")]
    assert len(annotations) == 2  # one per failed host, one per drifted host (check)


def test_a_bug_on_one_host_fails_that_host_only(
    fleet_hosts: list[FleetHost], sshd_server: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception in one host's thread fails that host; the others deploy."""
    broken = fleet_hosts[1].sshd.host
    real = rollout.open_host

    def open_host(
        settings: Settings,
        spec: HostSpec,
        warn: Callable[[str], None],
        run: RunInfo | None = None,
        abandon: threading.Event | None = None,
        cancel: Cancel | None = None,
    ) -> object:
        # Mock: no real component raises a non-SopsDeployError on demand; this stands in
        # for a bug (say a Paramiko exception we failed to translate) on one host.
        if str(spec) == broken:
            raise RuntimeError("simulated bug")
        return real(settings, spec, warn, run, abandon, cancel)

    monkeypatch.setattr(rollout, "open_host", open_host)
    settings = Settings(
        command="deploy",
        hosts=tuple(parse_host(h.sshd.host) for h in fleet_hosts),
        remote_path=REMOTE,
        ssh_key=sshd_server.client_key.read_text(),
        known_hosts="".join(h.sshd.known_hosts_line + "\n" for h in fleet_hosts),
        retries=0,
        timeout=60,
    )
    plan = Plan({}, b"FLEET_KEY=fleet-value\n", "compose")
    done: list[str] = []
    with rollout.Rollout(settings, lambda _w: None, lambda r: done.append(r.host)) as r:
        results = r.apply(plan)
    assert [r.host for r in results] == [h.sshd.host for h in fleet_hosts]
    assert sorted(done) == sorted(r.host for r in results)
    statuses = {r.host: r.status for r in results}
    assert statuses.pop(broken) == "failed"
    assert set(statuses.values()) == {"changed"}
    error = next(r.error for r in results if r.host == broken)
    assert error is not None
    assert "unexpected RuntimeError: simulated bug" in error.message
