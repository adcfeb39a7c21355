"""SIGINT and SIGTERM during a deploy: stop at the next safe point, clean up, report.

While hosts are being worked on, a signal only sets `requested`: each host's thread checks
it between steps (`check`) and while it waits (for the lock, for the post-command), and
raises `Interrupted` there, so the normal clean-up runs on a live connection — the temp file
is removed, the lock released, the audit line written — and the summary says what
happened on every host. Before that (decrypting, connecting) a signal stops at once.
Exit codes are the shell's: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from sops_deploy.errors import SopsDeployError

requested = threading.Event()
_state = {"signal": 0, "hosts_running": False}
NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class Interrupted(SopsDeployError):
    """A signal stopped the run; the exit code says which (128 + its number)."""

    def __init__(self, message: str = "", hint: str = "") -> None:
        number = _state["signal"] or signal.SIGINT
        super().__init__(
            message or f"interrupted by {signal_name()}", hint or "deploy again when ready"
        )
        self.exit_code = 128 + int(number)


def check(what: str) -> None:
    """Raise `Interrupted` (naming `what` was about to happen) if a signal came."""
    if requested.is_set():
        raise Interrupted(f"interrupted by {signal_name()} before {what}")


def signal_name() -> str:
    number = _state["signal"] or signal.SIGINT
    return NAMES.get(signal.Signals(number), str(number))


def _handle(number: int, _frame: FrameType | None) -> None:
    first = not requested.is_set()
    _state["signal"] = number
    requested.set()
    if not _state["hosts_running"] or not first:
        raise Interrupted()  # nothing on a server to clean up yet (or a second signal)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Install the handlers for the duration (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def hosts_running() -> Iterator[None]:
    """While hosts are worked on, a signal asks them to stop instead of raising here."""
    _state["hosts_running"] = True
    try:
        yield
    finally:
        _state["hosts_running"] = False
