"""A real OpenSSH ssh-agent for tests: `ssh-agent -D -a SOCK`, keys added with `ssh-add`."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests import processes


class Agent:
    """A real `ssh-agent -D -a SOCK`; `add` runs the real `ssh-add`."""

    def __init__(self, root: Path) -> None:
        self.sock = str(root / "agent.sock")
        self.proc = subprocess.Popen(
            ["ssh-agent", "-D", "-a", self.sock],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        processes.register_tree(self.proc.pid)  # the session-end check sees it
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ssh-agent did not start")
            time.sleep(0.02)

    @property
    def env(self) -> dict[str, str]:
        return {"SSH_AUTH_SOCK": self.sock}

    def add(self, key: Path) -> None:
        subprocess.run(
            ["ssh-add", "-q", str(key)],
            env={**os.environ, **self.env},
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
