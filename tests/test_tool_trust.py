"""Nothing from the tool cache runs unless it matches its digest (a planted sops is never
executed), and `tools install`'s go fallback shows progress and stops cleanly on SIGINT —
run in a real pseudo-terminal, with a fake slow `go` on PATH."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sops_deploy.errors import ToolError
from sops_deploy.inputs.environment import tool_places
from sops_deploy.inputs.settings import ToolPlaces
from sops_deploy.sops import tools
from tests.support import REPO, AgeIdentity, sops_encrypt

VERSION = tools.DEFAULT_SOPS_VERSION
FAKE_GO = """#!/bin/sh
# A stand-in for `go install -v PKG@vX`: module downloads, then packages, slowly; then a
# "built" sops (a copy of the real one) in $GOBIN. Its pid goes to $FAKE_GO_PID.
echo $$ > "$FAKE_GO_PID"
echo "go: downloading github.com/getsops/sops/v3 v{version}" >&2
sleep "$FAKE_GO_SLEEP"
echo "github.com/getsops/sops/v3/cmd/sops" >&2
echo "golang.org/x/crypto/chacha20" >&2
sleep 1
cp "$REAL_SOPS" "$GOBIN/sops"
"""
PLANTED = """#!/bin/sh
# A planted "sops": if anything ever runs it, the marker says so.
touch "{marker}"
echo "sops {version}"
"""


@pytest.fixture
def home(tmp_path: Path, sops_bin: str) -> dict[str, str]:
    """An environment with its own empty cache and records, and the fake go first on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    go = bindir / "go"
    go.write_text(FAKE_GO.format(version=VERSION))
    go.chmod(0o755)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOPS_", "RUNNER_", "GITHUB_", "XDG_"))
    }
    env.update(
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        PATH=f"{bindir}:{env['PATH']}",
        FAKE_GO_PID=str(tmp_path / "go.pid"),
        FAKE_GO_SLEEP="6",
        REAL_SOPS=sops_bin,
    )
    return env


def cached_sops(env: dict[str, str]) -> Path:
    plat = tools.current_platform()
    return Path(env["XDG_CACHE_HOME"]) / "sops-deploy/sops" / VERSION / plat.tag / "sops"


def plant(env: dict[str, str], tmp_path: Path) -> Path:
    """A fake sops at the cached path that would leave `marker` if run."""
    path = cached_sops(env)
    path.parent.mkdir(parents=True)
    marker = tmp_path / "planted-sops-ran"
    path.write_text(PLANTED.format(marker=marker, version=VERSION))
    path.chmod(0o755)
    return marker


def in_terminal(
    args: list[str],
    env: dict[str, str],
    *,
    until: str | None = None,
    ready: Path | None = None,
    timeout: float = 60,
    argv0: tuple[str, ...] = (sys.executable, "-m", "sops_deploy"),
) -> tuple[int, str]:
    """Run the CLI with a pty as its terminal; SIGINT it once `until` is printed (and the
    file `ready` exists)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*argv0, *args],
        env=env,
        cwd=REPO,
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    interrupted = False
    try:
        while time.monotonic() < deadline:
            readable, _, _ = select.select([master], [], [], 0.2)
            if readable:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            seen = until is not None and until in out.decode("utf-8", "replace")
            if seen and not interrupted and (ready is None or ready.exists()):
                proc.send_signal(signal.SIGINT)
                interrupted = True
            if proc.poll() is not None and not readable:
                break
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, out.decode("utf-8", "replace").replace("\r\n", "\n")


def test_tools_install_go_fallback_shows_progress_in_a_terminal(home: dict[str, str]) -> None:
    """The build announces itself, then reports elapsed time and counts while it runs."""
    code, out = in_terminal(["tools", "install", "sops", "--source", "go"], home)
    assert code == 0, out
    assert f"building sops v{VERSION} with go install (--source go) …" in out
    progress = [line for line in out.splitlines() if line.strip().startswith("… ")]
    assert progress, out
    assert "1 module(s) downloaded" in progress[0]
    assert "built in " in out
    assert str(cached_sops(home)) in out


def test_sigint_during_the_build_says_what_to_do_and_leaves_nothing(
    home: dict[str, str], tmp_path: Path
) -> None:
    """^C mid-build: exit 130, the message fits an install (not a deploy), go is stopped,
    no half-built binary and no temp directory in the cache."""
    home["FAKE_GO_SLEEP"] = "60"
    code, out = in_terminal(
        ["tools", "install", "sops", "--source", "go"],
        home,
        until="with go install",
        ready=tmp_path / "go.pid",
    )
    assert code == 130, out
    assert "interrupted by SIGINT while installing sops" in out
    assert "nothing of it was installed" in out
    assert "run `sops-deploy tools install` again when ready" in out
    assert "deploy again" not in out
    pid = int((tmp_path / "go.pid").read_text())
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    tool_root = cached_sops(home).parent.parent
    assert not [p for p in tool_root.rglob("*") if p.is_file()] if tool_root.exists() else True
    assert not list(tool_root.glob(".go-*")) if tool_root.exists() else True


def test_a_planted_cached_sops_is_never_run(
    home: dict[str, str], tmp_path: Path, sops_bin: str, age_id: AgeIdentity
) -> None:
    """A sops planted in the cache is refused by validate (why, and the fix), replaced by
    `tools install` (saying why), and the replacement — recorded by this user — is used."""
    marker = plant(home, tmp_path)
    plain = tmp_path / "x.env.encrypted"
    plain.write_bytes(sops_encrypt(sops_bin, b"A=1\n", [age_id.public]))
    home["AGE_KEY"] = age_id.secret
    refused = subprocess.run(
        [sys.executable, "-m", "sops_deploy", "validate", "--file", str(plain)],
        env=home,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0
    assert f"the cached sops at {cached_sops(home)} is not run" in refused.stderr
    assert "which is not the pinned release digest" in refused.stderr
    assert "sops-deploy tools install sops" in refused.stderr
    assert not marker.exists()

    home["FAKE_GO_SLEEP"] = "0"
    code, out = in_terminal(["tools", "install", "sops", "--source", "go"], home)
    assert code == 0, out
    assert "is not used:" in out
    assert "installing it again" in out
    assert not marker.exists()
    records = list((Path(home["XDG_STATE_HOME"]) / "sops-deploy/tools").glob("sops-*.json"))
    assert len(records) == 1
    assert records[0].stat().st_mode & 0o077 == 0
    # the nearest valid input: the build this user recorded is found and runs
    found = tools.find_sops(_places(home))
    assert found == str(cached_sops(home))

    # swapped after it was recorded: refused again, never run
    plant_again = cached_sops(home)
    plant_again.write_text(PLANTED.format(marker=marker, version=VERSION))
    with pytest.raises(ToolError, match="nor the digest recorded when this user installed it"):
        tools.find_sops(_places(home))
    assert not marker.exists()


def test_a_record_others_can_write_is_not_trusted(home: dict[str, str], tmp_path: Path) -> None:
    """A record in a directory other users can write proves nothing: the build is refused."""
    home["FAKE_GO_SLEEP"] = "0"
    code, out = in_terminal(["tools", "install", "sops", "--source", "go"], home)
    assert code == 0, out
    records = Path(home["XDG_STATE_HOME"]) / "sops-deploy/tools"
    assert tools.find_sops(_places(home)) == str(cached_sops(home))
    records.chmod(0o777)
    try:
        with pytest.raises(ToolError, match="which is not the pinned release digest") as caught:
            tools.find_sops(_places(home))
        assert "recorded" not in caught.value.message
    finally:
        records.chmod(0o700)


def _places(env: dict[str, str]) -> ToolPlaces:
    return tool_places(env)


def test_make_demo_announces_each_slow_step_in_a_terminal(home: dict[str, str]) -> None:
    """`make demo` on a fresh cache: the sops build announces itself and shows progress, the
    demo says what it starts; the second run (warm) needs no build and stays under 30 s."""
    make = ["make", "-s", "-C", str(REPO), "demo", "TOOLS_SOURCE=go"]
    code, out = in_terminal(make, home, timeout=300, argv0=())
    assert code == 0, out
    for expected in (
        f"building sops v{VERSION} with go install (--source go) …",
        "1 module(s) downloaded",
        "starting a throwaway OpenSSH sshd on 127.0.0.1",
        "second run: the server already matches",
        "demo sshd stopped",
    ):
        assert expected in out, out
    assert "actionlint" not in out
    assert "wheels" not in out
    started = time.monotonic()
    code, out = in_terminal(make, home, timeout=120, argv0=())
    assert code == 0, out
    assert time.monotonic() - started < 30
    assert "go install" not in out
