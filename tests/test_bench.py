"""The benchmark machinery: a smoke run of `make bench`, the results store, the table
generator, the connection-stage parser and the peer-job definitions (no timing asserted)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def benchmod() -> Any:
    """A module of the `bench` package (importable from the repository root, like tests)."""

    def load(name: str) -> ModuleType:
        return importlib.import_module(f"bench.{name}")

    return load


@pytest.mark.slow
def test_bench_smoke_produces_every_figure(tmp_path: Path) -> None:
    """The benchmark runs end to end and records every figure, row and stage."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bench",
            *("--runs", "1", "--hosts", "1,2", "--big-keys", "200"),
            *("--link-runs", "1", "--link-rtts", "0,40", "--chart", str(tmp_path / "l.svg")),
            *("--results", str(tmp_path), "--setup-runs", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = tmp_path.glob("*.json")
    data = json.loads(path.read_text())["bench"]
    assert set(data["figures"]) == {
        "b/a",
        "c/a",
        "e_b/e_a",
        "e_c/e_a",
        "version/python",
        "validate_ms",
        "validate/sops_decrypt",
        "link40",
        "link40_hosts16/hosts1",
        "rss_b_mib",
        "rss_e_mib",
        "hosts2/hosts1",
    }
    assert all(value > 0 for value in data["figures"].values())
    for name in ("a", "b", "c", "hosts1", "hosts2", "loop2", "xargs2", "e_a", "e_b", "validate"):
        assert data["timings"][name]["median"] > 0
    for client in ("sops-deploy", "openssh"):
        assert {"tcp", "auth", "channel", "sftp"} <= set(data["stages"][client])
    assert "(h) `validate`, 20 keys" in proc.stdout
    assert "(j) deploy over a 40 ms round-trip link" in proc.stdout
    assert "Round trips waited for per deploy" in proc.stdout
    assert {(p["rtt_ms"], p["hosts"]) for p in data["link"]["points"]} == {
        (0, 1), (0, 2), (40, 1), (40, 2)
    }  # fmt: skip
    assert "(k) cached sops checked before it runs" in proc.stdout
    assert "Connection stages" in proc.stdout
    assert "peak RSS" in proc.stdout
    setup = json.loads(path.read_text())["setup"]["seconds"]
    assert len(setup["cold"]) == len(setup["warm"]) == 1
    assert "Action setup in act" in proc.stdout


def test_bench_times_the_cached_tool_check(benchmod: Any, tmp_path: Path) -> None:
    """(j): the stat check against the record is far cheaper than the full SHA-256."""
    bench = benchmod("bench").Bench(tmp_path, 3, [1], 10)
    bench.run_toolcheck()
    stat, full = bench.results["check_stat"].median, bench.results["check_hash"].median
    assert 0 < stat < full


def test_store_keeps_one_file_per_commit_with_sections(benchmod: Any, tmp_path: Path) -> None:
    """Two benchmarks of one commit share its file; `latest` finds each section."""
    store = benchmod("store")
    first = store.save("bench", {"runs": 1}, tmp_path)
    second = store.save("peers", {"runs": 2}, tmp_path)
    assert first == second
    assert first.stem == store.commit_id()
    record = json.loads(first.read_text())
    assert record["bench"]["runs"] == 1
    assert record["peers"]["runs"] == 2
    assert store.latest("peers", tmp_path)["peers"]["runs"] == 2
    assert store.latest("nothing", tmp_path) is None


def _bench_section() -> dict[str, Any]:
    return {
        "runs": 3,
        "measured": "2026-01-01T00:00:00Z",
        "machine": "x86_64, 2 cores",
        "rows": [
            {"figure": "(b) deploy", "ours": "400 ms", "baseline": "380 ms", "ratio": 1.05,
             "target": "≤ 1.1", "met": True},
            {"figure": "(e) big", "ours": "900 ms", "baseline": "400 ms", "ratio": 2.25,
             "target": "≤ 1.3", "met": False},
            {"figure": "(g) rss", "ours": "40 MiB", "baseline": "–", "ratio": None,
             "target": None, "met": None},
        ],
        "stages": {
            "sops-deploy": {"tcp": 0.3, "banner": 9.0, "kex": 12.0, "auth": 48.0, "sftp": 2.0},
            "openssh": {"tcp": 0.1, "banner": 8.0, "kex": 150.0, "auth": 9.0, "sftp": 2.5},
        },
    }  # fmt: skip


def test_table_marks_targets_and_stalls(benchmod: Any) -> None:
    """Each row says met or missed; a slow round-trip stage is marked as a stall."""
    table = benchmod("table")
    text = table.bench_markdown(_bench_section())
    assert "| (b) deploy | 400 ms | 380 ms | 1.05 | ≤ 1.1 | met |" in text
    assert "| (e) big | 900 ms | 400 ms | 2.25 | ≤ 1.3 | **missed** |" in text
    stages = table.stages_markdown(_bench_section())
    assert "| auth | 48.0 **stall** | 9.0 | +39.0 |" in stages
    assert "| kex | 12.0 | 150.0 | -138.0 |" in stages  # key exchange is CPU, never a stall
    assert "sops-deploy TCP stalls: auth." in stages


def test_table_rewrites_only_between_markers(benchmod: Any, tmp_path: Path) -> None:
    """The page keeps its prose; the tables between the markers come from the results."""
    table = benchmod("table")
    readme = "intro\n<!-- bench:begin -->\nold table\n<!-- bench:end -->\noutro\n"
    record = {"commit": "abc1234", "bench": _bench_section()}
    new = table.readme_with_tables(readme, record, None)
    assert new.startswith("intro\n<!-- bench:begin -->\n")
    assert new.endswith("<!-- bench:end -->\noutro\n")
    assert "old table" not in new
    assert "Measured at commit `abc1234`" in new
    assert table.readme_with_tables(new, record, None) == new  # regenerating changes nothing
    with pytest.raises(SystemExit, match="peers:begin"):
        table.readme_with_tables(readme, None, {"commit": "x", "peers": {}})


def test_readme_tables_are_generated_from_committed_results(benchmod: Any) -> None:
    """docs/performance.md's tables are what bench/table.py makes of bench/results/."""
    table = benchmod("table")
    assert table.main(["--check"]) == 0


def test_peers_table_gives_ratios_and_reasons(benchmod: Any) -> None:
    """Ratios are to sops-deploy on the same job; a missing peer says why; failures show."""
    table = benchmod("table")
    data = {
        "runs": 3,
        "job_order": ["changed-1", "drift-1"],
        "job_titles": {"changed-1": "changed, 1 host", "drift-1": "drift check, 1 host"},
        "tools": {
            "sops-deploy": {"version": "x", "does": "d.", "does_not": "–"},
            "ansible": {"version": "2.19", "does": "copy.", "does_not": "no validation."},
            "drone-scp": {"missing": "the Go module proxy refuses it"},
        },
        "results": {
            "sops-deploy": {
                "changed-1": {"median": 0.5, "max_rss_kib": 40960},
                "drift-1": {"median": 0.4, "max_rss_kib": 40960},
            },
            "ansible": {
                "changed-1": {"median": 5.0, "max_rss_kib": 61440},
                "drift-1": {"error": "exit 2"},
            },
        },
    }
    text = table.peers_markdown(data)
    assert "| ansible | 5.00 s (10.0×) | failed | 60 MiB |" in text
    assert "| sops-deploy | 0.50 s | 0.40 s | 40 MiB |" in text
    assert "| drone-scp | not available: the Go module proxy refuses it |" in text
    assert "drift check, 1 host failed: exit 2" in text
    rows = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["| sops-deploy", "| ansible", "| drone-scp"]  # ours first, missing last


def test_openssh_stage_markers_parse_sftp_verbose_output(benchmod: Any) -> None:
    """`sftp -vv` line times become stage durations, the answer on stdout ends `request`."""
    stages = benchmod("stages")
    lines = [
        (0.010, "err", "debug1: Connecting to 127.0.0.1 [127.0.0.1] port 2222."),
        (0.011, "err", "debug1: Connection established."),
        (0.020, "err", "debug1: Remote protocol version 2.0, remote software version OpenSSH_9"),
        (0.100, "err", "debug1: SSH2_MSG_NEWKEYS received"),
        (0.150, "err", 'Authenticated to 127.0.0.1 ([127.0.0.1]:2222) using "publickey".'),
        (0.190, "err", "debug2: channel_input_open_confirmation: channel 0: callback start"),
        (0.192, "err", "debug2: Remote version: 3"),
        (0.193, "out", "sftp> ls -l .env"),
        (0.195, "out", "-rw-------    ? root     root            4 Nov 29 08:53 .env"),
    ]
    durations = stages.stage_durations(stages.openssh_marks(lines))
    assert list(durations) == list(stages.STAGES)
    assert durations["auth"] == pytest.approx(50.0)
    assert durations["channel"] == pytest.approx(40.0)
    assert durations["request"] == pytest.approx(3.0)


def _fake_bench(tmp_path: Path, hosts: int) -> Any:
    servers = [SimpleNamespace(port=2200 + i, user="deploy") for i in range(hosts)]
    b = SimpleNamespace(
        root=tmp_path,
        servers=servers,
        sops="/opt/sops",
        client=tmp_path / "id",
        known_hosts=tmp_path / "known_hosts",
        env={"AGE_KEY": "x"},
        sops_env={"PATH": "/usr/bin", "HOME": str(tmp_path)},
        small=[tmp_path / "a.env", tmp_path / "b.env"],
    )
    b.srv_home = lambda i: tmp_path / f"srv{i}"
    b.srv_path = lambda i: str(tmp_path / f"srv{i}" / ".env")
    b.ssh_argv = lambda i: ["ssh", "-F", "none", "-p", str(servers[i].port), "deploy@127.0.0.1"]
    return b


def test_peer_jobs_do_the_comparable_thing(benchmod: Any, tmp_path: Path) -> None:
    """Ansible decrypts with community.sops and copies 0600; --check is its drift job;
    pyinfra's deploy decrypts with sops and puts 0600; every host is in the inventory."""
    peers, peer_tools = benchmod("peers"), benchmod("peer_tools")
    b = _fake_bench(tmp_path, 3)
    tool = peer_tools.Tool("ansible", "2.19", {"ansible-playbook": Path("/ap")}, {})
    ansible = peers.ansible(b, tool)
    argv, env, ok = ansible.command("drift", b.small[0], 3)
    assert argv[-1] == "--check"
    assert ok == {0}
    assert "ControlMaster=auto" in env["ANSIBLE_SSH_ARGS"]
    assert "StrictHostKeyChecking=yes" in env["ANSIBLE_SSH_ARGS"]
    (task,) = yaml.safe_load(peers.ANSIBLE_PLAYBOOK)[0]["tasks"]
    assert "community.sops.sops" in task["ansible.builtin.copy"]["content"]
    assert task["ansible.builtin.copy"]["mode"] == "0600"
    assert task["no_log"] is True
    inventory = Path(argv[argv.index("-i") + 1]).read_text()
    assert [line.split()[2] for line in inventory.splitlines()[1:]] == [
        "ansible_port=2200",
        "ansible_port=2201",
        "ansible_port=2202",
    ]
    pyinfra = peers.pyinfra(b, peer_tools.Tool("pyinfra", "3", {"pyinfra": Path("/pi")}, {}))
    (shell,), env, _ = pyinfra.command("changed", b.small[1], 2)
    assert "--dry" not in shell
    assert env["BENCH_FILE"] == str(b.small[1])
    compile(peers.PYINFRA_DEPLOY, "deploy.py", "exec")
    assert 'mode="600"' in peers.PYINFRA_DEPLOY
    assert "--dry" in pyinfra.command("drift", b.small[0], 2)[0][0]
    order, titles = peers.job_names([1, 16])
    assert order == [f"{k}-{n}" for n in (1, 16) for k in ("changed", "unchanged", "drift")]
    assert titles["drift-16"] == "drift check, 16 hosts"


def test_missing_go_peer_is_reported_not_raised(
    benchmod: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer whose install fails comes back as Missing with a reason, for the table."""
    peer_tools = benchmod("peer_tools")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    missing = peer_tools.go_tool("example.com/none/tool@v1.0.0")
    assert isinstance(missing, peer_tools.Missing)
    assert missing.why == "no `go` command on PATH"


def _link_section() -> dict[str, Any]:
    points = [
        {"rtt_ms": rtt, "hosts": n, "ours": 0.4 + rtt * k / 1000, "raw": 0.3 + rtt * 8 / 1000}
        for rtt in (0, 10, 40, 100)
        for n, k in ((1, 20), (16, 22))
    ]
    for p in points:
        p["ratio"] = p["ours"] / p["raw"]
    link = benchmod_latency().round_trips(points)
    return {"link": {"rtts_ms": [0, 10, 40, 100], "hosts": [1, 16], "points": points,
                     "round_trips": link}}  # fmt: skip


def benchmod_latency() -> ModuleType:
    return importlib.import_module("bench.latency")


def test_link_table_chart_and_round_trips_from_the_sweep(benchmod: Any) -> None:
    """The slow-link sweep: one row per RTT, the slope as round trips (20 against 8), and
    an SVG with a line per host count and the target."""
    data = _link_section()
    assert round(data["link"]["round_trips"]["ours"], 6) == 20
    assert round(data["link"]["round_trips"]["raw"], 6) == 8
    text = benchmod("table").link_markdown(data)
    assert "| 40 ms | 1.20 s / 0.62 s / 1.94× |" in text
    assert "sops-deploy 20.0, OpenSSH pipeline 8.0" in text
    svg = benchmod("chart").svg(data["link"])
    assert svg.count("<polyline") == 2
    assert "target 1.3×" in svg
    rows = benchmod("figures")
    assert rows._link(data["link"], 40, 16)["hosts"] == 16


def test_delay_proxy_carries_every_byte_both_ways() -> None:
    """Pipelined chunks through the delaying proxy arrive whole and in order."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                got.append(data)
                conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    proxy = benchmod_latency().DelayProxy(server.getsockname()[1])
    proxy.delay = 0.005
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as c:
            payload = b"".join(i.to_bytes(4, "big") for i in range(50_000))
            c.sendall(payload)
            back = b""
            while len(back) < len(payload):
                back += c.recv(65536)
        assert back == payload
        assert b"".join(got) == payload
    finally:
        proxy.close()
        server.close()
