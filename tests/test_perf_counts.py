"""Costs that make a deploy slow, pinned as counts (never timed): SFTP requests and round
trips per deploy, modules `validate` and `deploy` import, passes over a 10,000-key
plaintext, and the bytes allocated at peak for it. Each is counted in a fresh interpreter
by tests/perfcount.py against the real sshd; `make bench` turns them into seconds.

A pin failing names what moved it. If the change is worth its cost, raise the pin in the
same commit and say why there (and re-run `make bench`); if a change lowers a count, lower
the pin so that it stays lowered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.timing import random_env
from tests.support import REPO

# --- the pins ---------------------------------------------------------------------------
# SFTP round trips (flights: requests answered before the next is sent) and requests per
# deploy of a 50-key file, and the SSH exchanges after the key exchange.
# Before issue 28: 32, 47, 36 round trips; the owner step (issue 25) adds one, asked with
# the directory's stat; the bounded listing (remote/listing.py) waited for each READDIR
# and its CLOSE (24, 32, 23); its READDIRs now go two at a time, then 4, 8 (one round trip
# for a directory of up to 100 entries), the CLOSE not waited for: 2 fewer per listing.
FLIGHTS = {"first": 22, "changed": 28, "unchanged": 21}
REQUESTS = {"first": 34, "changed": 45, "unchanged": 35}
SSH_STEPS = {"auth_publickey": 1, "open_channel": 1, "invoke_subsystem": 1}
# Reading the current 10,000-key file (1 MB) back, unchanged rerun.
BIG_UNCHANGED_FLIGHTS = 21  # 37 when a file was read one READ at a time; 23 before the
# pipelined READDIRs
# Modules in sys.modules at exit, beyond what the bare interpreter holds at start-up
# (147 and 468 at the merge of issues 23-30: 180 and 500 counted with start-up, which
# sitecustomize and .pth hooks make differ between venvs).
# validate: the reporter imported exportnames, mdsafe; the plan stores.*; the layout split
# inputs/precedence, plan/decrypt and inputs/commandopts out of large modules; inputs/sources
# (where each value came from, for errors in the words of the source): 147. Then 128,
# imported where used instead: shutil (and zlib, bz2, lzma: argparse's formatter asked it for
# the width, cli._formatter), ssh/sshconfig + shlex (the SSH setup), output/summary, mdsafe,
# exportnames (host tables, failures, --export-env), the renderers shell/docker/systemd/node
# (envfile/render.py, one per run), envfile/structured (yaml/json) and inputs/commandopts
# (the maintainer commands' records, inputs/options.py's builders).
VALIDATE_MODULES = 128
DEPLOY_MODULES = 471  # issues 25, 30 and the stores added owner, become, listing, stores.*
# tracemalloc's peak for a 10,000-key changed deploy (Python objects only: the plaintext,
# its entries, the rendered file, the redaction set). Measured 13.7 MB.
BIG_PEAK_BYTES = 15_000_000
# The calls handed the whole 10,000-key text (str or bytes): the encrypted file is looked
# at twice (sops metadata), the plaintext decoded and parsed once, the rendered file
# re-parsed once by its reader's model; the transaction compares and hashes it.
BIG_PASSES = [
    "sops_deploy.sops.runner._lines_starting",
    "sops_deploy.sops.runner._lines_starting",
    "sops_deploy.plan.build.parse_plaintext",
    "sops_deploy.envfile.source.decode",
    "sops_deploy.envfile.source.parse_dotenv",
    "sops_deploy.envfile.source.read_statements",
    "sops_deploy.envfile.render.compose_model",
    "sops_deploy.remote.transaction.deliver",
    "sops_deploy.deploy.delivery._deliver.<locals>.<lambda>",
    "sops_deploy.deploy.delivery.diff",
    "sops_deploy.remote.transaction._replace",
    "sops_deploy.remote.transaction._audit",
]
BIG_KEYS = 10_000


def counted(env: dict[str, str], tmp_path: Path, *args: str, flags: tuple[str, ...] = ()) -> Any:
    """Run the CLI under tests/perfcount.py; its counts (exit code 0 asserted)."""
    out = tmp_path / "counts.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.perfcount", str(out), *flags, "--", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.exists(), proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["exit"] == 0, proc.stderr[-2000:]
    return data


def _moved(what: str, pin: int, data: dict[str, Any]) -> str:
    return (
        f"{what} rose above its pin {pin}: a change added SFTP requests or made one wait for "
        f"another (sequence, '|' = a wait: {' '.join(data['sftp_sequence'])}); pipeline it "
        "in remote/connection.py or raise the pin in tests/test_perf_counts.py with the reason"
    )


@pytest.fixture
def deploy_counts(
    base_env: dict[str, str],
    encrypt: Callable[..., Path],
    target_args: list[str],
    tmp_path: Path,
) -> dict[str, Any]:
    first = encrypt(random_env(50, 1), name="a.env.encrypted")
    second = encrypt(random_env(50, 2), name="b.env.encrypted")
    run = lambda f: counted(base_env, tmp_path, "deploy", "--file", str(f), *target_args)  # noqa: E731
    return {"first": run(first), "changed": run(second), "unchanged": run(second)}


@pytest.mark.parametrize("kind", ["first", "changed", "unchanged"])
def test_sftp_round_trips_and_requests_per_deploy(deploy_counts: dict[str, Any], kind: str) -> None:
    """A 50-key deploy (first, changed, unchanged) waits for the server at most FLIGHTS
    times over SFTP and sends at most REQUESTS requests; the SSH set-up takes one
    authentication, one channel and one subsystem request."""
    data = deploy_counts[kind]
    assert data["sftp_flights"] <= FLIGHTS[kind], _moved(
        f"{kind}: round trips", FLIGHTS[kind], data
    )
    assert data["sftp_requests"] <= REQUESTS[kind], _moved(
        f"{kind}: requests", REQUESTS[kind], data
    )
    assert data["ssh_steps"] == SSH_STEPS, (
        f"{kind}: the SSH exchanges after the key exchange changed: {data['ssh_steps']} "
        f"(pinned {SSH_STEPS}); a new channel, exec or authentication attempt costs a round "
        "trip per host"
    )
    if kind == "unchanged":
        assert "posix-rename@openssh.com" not in data["sftp_kinds"]  # nothing was written


def test_modules_validate_and_deploy_import(
    base_env: dict[str, str],
    encrypt: Callable[..., Path],
    target_args: list[str],
    tmp_path: Path,
) -> None:
    """`validate` loads no SSH, report tables or python-dotenv (a compose file); both stay
    within their pinned module counts."""
    enc = encrypt(random_env(20, 5))
    validate = counted(base_env, tmp_path, "validate", "--file", str(enc))
    modules = validate["modules"]
    heavy = [m for m in modules if m.startswith(("paramiko", "cryptography", "sops_deploy.remote"))]
    assert heavy == [], f"validate imports the SSH stack: {heavy[:5]}"
    unused = {"dotenv", "sops_deploy.deploy", "sops_deploy.deploy.rollout", "concurrent.futures"}
    assert not unused & set(modules), (
        f"validate imports what it does not use: {unused & set(modules)}"
    )
    startup = _startup_modules(base_env)
    own = set(modules) - startup
    assert len(own) <= VALIDATE_MODULES, (
        f"validate imports {len(own)} modules (pin {VALIDATE_MODULES}): a new top-level "
        "import on its path; import it where it is used"
    )
    deploy = set(counted(base_env, tmp_path, "deploy", "--file", str(enc), *target_args)["modules"])
    assert len(deploy - startup) <= DEPLOY_MODULES, (
        f"deploy imports {len(deploy - startup)} modules (pin {DEPLOY_MODULES}): a new "
        "import on the deploy path"
    )


def _startup_modules(env: dict[str, str]) -> set[str]:
    """What the interpreter holds before any code of ours runs (site, sitecustomize, a
    .pth's hooks): these differ between Pythons and venvs, so the pins leave them out."""
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; print('\\n'.join(sys.modules))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(proc.stdout.split())


@pytest.fixture
def big_file(encrypt: Callable[..., Path]) -> tuple[Path, int]:
    text = random_env(BIG_KEYS, 3)
    return encrypt(text, name="big.env.encrypted"), len(text)


def test_a_10000_key_deploy_passes_over_the_text_and_peak_memory(
    base_env: dict[str, str],
    big_file: tuple[Path, int],
    target_args: list[str],
    tmp_path: Path,
) -> None:
    """The 10,000-key file: the pinned passes over its text, tracemalloc's peak under
    BIG_PEAK_BYTES, and reading it back (unchanged rerun) in BIG_UNCHANGED_FLIGHTS waits."""
    enc, size = big_file
    args = ("deploy", "--file", str(enc), *target_args)
    changed = counted(base_env, tmp_path, *args, flags=("--trace-alloc",))
    assert changed["peak_bytes"] <= BIG_PEAK_BYTES, (
        f"a 10,000-key deploy allocates {changed['peak_bytes']:,} bytes at peak (pin "
        f"{BIG_PEAK_BYTES:,}): a copy of the plaintext or a structure per key was added "
        "(the redaction set, a second model parse?)"
    )
    unchanged = counted(base_env, tmp_path, *args, flags=("--passes", str(size)))
    assert unchanged["passes"] == BIG_PASSES, (
        "the passes over the 10,000-key text changed (was: the pinned BIG_PASSES); a new "
        f"one is a whole-file scan per deploy: {unchanged['passes']}"
    )
    assert unchanged["sftp_flights"] <= BIG_UNCHANGED_FLIGHTS, _moved(
        "reading back 1 MB", BIG_UNCHANGED_FLIGHTS, unchanged
    )


# --- the pipelined requests return exactly what one-at-a-time requests did ----------------


@pytest.fixture
def conn(sshd_server: Any) -> Iterator[Any]:
    from sops_deploy.inputs.settings import HostSpec
    from sops_deploy.remote import Connection, Credentials, Options, Trust

    spec = HostSpec("127.0.0.1", sshd_server.port, sshd_server.user)
    options = Options(Credentials(key_file=str(sshd_server.client_key)),
                      Trust(sshd_server.known_hosts_line + "\n"),
                      default_user=sshd_server.user, timeout=10)  # fmt: skip
    with Connection(spec, options) as c:
        yield c


@pytest.mark.parametrize(
    ("size", "told"),
    [
        pytest.param(0, 0, id="empty"),
        pytest.param(5000, 5000, id="small"),
        pytest.param(32768 * 3, 32768 * 3, id="whole-chunks"),
        pytest.param(1_000_003, 1_000_003, id="1MB"),
        pytest.param(300_000, 1000, id="grew-after-lstat"),
        pytest.param(1000, 300_000, id="shrank-after-lstat"),
    ],
)
def test_read_file_returns_the_whole_file(
    conn: Any, remote_dir: Path, size: int, told: int
) -> None:
    """Connection.read_file: FSTAT and every READ sent together give back every byte, in
    order, whatever size the caller expected; the FSTAT is the handle's own."""
    data = bytes(i * 7 % 251 for i in range(size))
    (remote_dir / "f").write_bytes(data)
    attrs, got = conn.read_file(str(remote_dir / "f"), told, 64 << 20)
    assert got == data
    assert attrs.st_size == size


def test_read_file_stops_past_the_limit(conn: Any, remote_dir: Path) -> None:
    """A file longer than the limit (a server that lies about its size) is read to the
    limit and one chunk past it, never to its end; the caller refuses it."""
    (remote_dir / "f").write_bytes(b"x" * 500_000)
    _attrs, got = conn.read_file(str(remote_dir / "f"), 10, 100_000)
    assert 100_000 < len(got) < 500_000


@pytest.mark.parametrize("count", [0, 1, 99, 100, 250, 301, 650])
def test_listdir_sees_every_name(conn: Any, remote_dir: Path, count: int) -> None:
    """The listing sees every name, around each 100-name answer boundary (the deferred
    CLOSEs of earlier reads are dropped, not mistaken for its answers)."""
    for i in range(count):
        (remote_dir / f"n{i:04d}").touch()
    assert sorted(conn.listdir(str(remote_dir))) == [f"n{i:04d}" for i in range(count)]


def test_attributes_answer_each_request(conn: Any, remote_dir: Path) -> None:
    """stat and lstat asked together: attributes, or each one's own error."""
    (remote_dir / "f").write_text("x")
    (remote_dir / "link").symlink_to(remote_dir / "f")
    d, f, link, missing = conn.attributes(
        ("stat", str(remote_dir)),
        ("lstat", str(remote_dir / "f")),
        ("lstat", str(remote_dir / "link")),
        ("lstat", str(remote_dir / "missing")),
    )
    import stat as st

    assert st.S_ISDIR(d.st_mode)
    assert st.S_ISREG(f.st_mode)
    assert st.S_ISLNK(link.st_mode)
    assert isinstance(missing, FileNotFoundError)
