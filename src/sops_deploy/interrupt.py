"""SIGINT and SIGTERM during a deploy: stop at the next safe point, clean up, report.

The front door makes one `Cancel` token per run and installs its handlers (`handled`);
the rollout hands it to every host's connection (`Connection.cancel`), and the remote
layers read it there. While hosts are being worked on, a signal only sets the token: each
host's thread checks it between steps (`check`) and while it waits (for the lock, for the
post-command), and raises `Interrupted` there, so the normal clean-up runs on a live
connection — the temp file is removed, the lock released, the audit line written — and
the summary says what happened on every host. Before that (decrypting, connecting) a
signal stops at once. Exit codes are the shell's: 130 for SIGINT, 143 for SIGTERM.
This module holds no state of its own: everything lives on the token.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from sops_deploy.errors import SopsDeployError


def signal_name(number: int) -> str:
    """ "SIGINT", "SIGTERM" (the number itself for a signal Python does not name)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


class Interrupted(SopsDeployError):
    """A signal stopped the run; the exit code says which (128 + its number)."""

    def __init__(self, message: str = "", hint: str = "", signum: int = signal.SIGINT) -> None:
        super().__init__(
            message or f"interrupted by {signal_name(signum)}", hint or "deploy again when ready"
        )
        self.signum = int(signum)
        self.exit_code = 128 + self.signum


class Cancel:
    """The run's cancel token: set by a signal (or by `set`), read by every host's thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._signum = 0
        self._hosts_running = False

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self, signum: int = signal.SIGINT) -> None:
        self._signum = signum
        self._event.set()

    @property
    def signal_name(self) -> str:
        return signal_name(self._signum or signal.SIGINT)

    def interrupted(self, message: str = "", hint: str = "") -> Interrupted:
        """The error for this token's signal (its exit code is 128 + the signal's number)."""
        return Interrupted(message, hint, self._signum or signal.SIGINT)

    def check(self, what: str) -> None:
        """Raise `Interrupted` (naming `what` was about to happen) if a signal came."""
        if self.is_set():
            raise self.interrupted(f"interrupted by {self.signal_name} before {what}")

    def _handle(self, number: int, _frame: FrameType | None) -> None:
        first = not self.is_set()
        self.set(number)
        if not self._hosts_running or not first:
            raise self.interrupted()  # nothing on a server to clean up yet (or a 2nd signal)

    @contextlib.contextmanager
    def handled(self) -> Iterator[None]:
        """Install the handlers for the duration (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    @contextlib.contextmanager
    def hosts_running(self) -> Iterator[None]:
        """While hosts are worked on, a signal asks them to stop instead of raising here."""
        self._hosts_running = True
        try:
            yield
        finally:
            self._hosts_running = False
