"""Head starts: slow work begun in a background thread before the main thread needs it, so
the waits overlap — sops decrypting (its own process) while the plan's modules load, and
the SSH library loading (and `git rev-parse` for the audit line) while the main thread
builds the plan. What the work returns or raises reaches the caller where it collects it,
as if it had run there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from sops_deploy.inputs.settings import Settings
    from sops_deploy.sops.runner import EncryptedFile

T = TypeVar("T")


class Started(Generic[T]):
    """`work()` running in its own thread; `result()` waits, then returns or raises."""

    def __init__(self, work: Callable[[], T], name: str) -> None:
        self._work = work
        self._value: T | None = None
        self._error: BaseException | None = None
        # Not a daemon: an early exit (a usage error) still waits for sops or git to end.
        self._thread = threading.Thread(target=self._run, name=name)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._work()
        except BaseException as exc:  # raised again by result(), in the caller's thread
            self._error = exc

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


Decrypted = list[tuple["EncryptedFile", bytes]]


def decrypting(settings: Settings) -> Started[Decrypted | None]:
    """Every source file found, inspected and decrypted by sops, in order (what
    `plan.decrypt_all` returns); None when no file is given (`decrypt_all` says so)."""

    def work() -> Decrypted | None:
        from sops_deploy.stores.source import read_all  # files and vault:// / aws-sm://

        if not settings.files:
            return None
        return read_all(settings)

    return Started(work, "decrypt")


def connecting(settings: Settings) -> Started[None]:
    """The SSH library loaded, and the commit an audit line names looked up, meanwhile."""

    def work() -> None:
        import sops_deploy.remote  # noqa: F401  (Paramiko: the longest import of a deploy)

        if settings.command == "deploy" and not settings.dry_run and settings.run is not None:
            settings.run.commit()  # cached: the audit line reads it without waiting for git

    return Started(work, "connect-prep")
