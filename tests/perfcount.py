"""Deterministic costs of one CLI run, counted in the process that runs it (no clock).

`python -m tests.perfcount OUT.json [--trace-alloc] -- ARGS…` runs `sops_deploy.cli.main(ARGS)`
with counters around Paramiko's SFTP client and transport, then writes to OUT.json:

  sftp_requests   SFTP requests sent (each `_async_request`), and `sftp_kinds` by name
  sftp_flights    round trips over SFTP: reads of a reply after something was sent since
                  the last read (requests sent together and answered together: one flight)
  ssh_steps       blocking SSH-level exchanges after the key exchange, by name (each
                  authentication attempt, channel open, exec, subsystem)
  modules         `sys.modules` at exit (sorted)
  peak_bytes      with --trace-alloc: tracemalloc's peak over the run
  passes          with --passes N: every call of a sops_deploy function handed a text (str
                  or bytes) of at least 90% of N characters and no position into it (a pass
                  over the plaintext, the encrypted or the rendered file; a caller and its
                  callee both count), in call order
  exit            the exit code

The SFTP counts are taken in the calling thread's order of sends and reads, so they do not
depend on timing. Used by tests/test_perf_counts.py and bench/latency.py; it touches
Paramiko's internals only to count (src/ never does outside remote/connection.py).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

COUNTS: dict[str, Any] = {
    "sftp_requests": 0,
    "sftp_flights": 0,
    "sftp_kinds": Counter(),
    "sftp_sequence": [],  # KIND@module.function in order, "|" where a reply was waited for
    "ssh_steps": Counter(),
}
_state = threading.local()


def _caller() -> str:
    """The innermost sops_deploy function on the stack (which step sent a request)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith("sops_deploy.") and name != "sops_deploy.remote.connection":
            return f"{name.rsplit('.', 1)[-1]}.{frame.f_code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return "?"


def _wrap(cls: type, name: str, before: Callable[..., None]) -> None:
    real = getattr(cls, name)

    def wrapper(self: object, *args: Any, **kwargs: Any) -> Any:
        before(self, *args)
        return real(self, *args, **kwargs)

    setattr(cls, name, wrapper)


def install() -> None:
    """Put the counters around Paramiko (imported here: the run would import it anyway)."""
    import paramiko
    from paramiko import sftp as sftp_mod
    from paramiko.sftp_client import SFTPClient

    names = {
        v: k[4:] for k, v in vars(sftp_mod).items() if k.startswith("CMD_") and isinstance(v, int)
    }
    pending: dict[int, bool] = {}  # id(client) -> sent since the last read

    def request(_self: object, _fileobj: object, t: int, *args: object) -> None:
        COUNTS["sftp_requests"] += 1
        kind = names.get(t, str(t))
        if kind == "EXTENDED" and args:
            kind = str(args[0])
        COUNTS["sftp_kinds"][kind] += 1
        COUNTS["sftp_sequence"].append(f"{kind}@{_caller()}")

    def send(self: object, *_a: object) -> None:
        pending[id(self)] = True

    def read(self: object, *_a: object) -> None:
        if pending.get(id(self)):
            COUNTS["sftp_flights"] += 1
            COUNTS["sftp_sequence"].append("|")
            pending[id(self)] = False

    def step(name: str) -> Callable[..., None]:
        return lambda *_a: COUNTS["ssh_steps"].update([name])

    _wrap(SFTPClient, "_async_request", request)
    _wrap(SFTPClient, "_send_packet", send)
    _wrap(SFTPClient, "_read_packet", read)
    for method in ("auth_publickey", "auth_none", "open_channel"):
        _wrap(paramiko.Transport, method, step(method))
    for method in ("exec_command", "invoke_subsystem"):
        _wrap(paramiko.Channel, method, step(method))


def count_passes(size: int) -> list[str]:
    """Record the sops_deploy calls given a text of at least 90% of `size`."""
    import sops_deploy

    package = str(Path(sops_deploy.__file__).parent)
    threshold = size * 9 // 10
    passes: list[str] = []
    seen: set[Any] = set()  # frames counted: a generator's resumptions are calls too

    def profile(frame: Any, event: str, _arg: object) -> None:
        code = frame.f_code
        if event != "call" or frame in seen or not code.co_filename.startswith(package):
            return
        args = [frame.f_locals.get(n) for n in code.co_varnames[: code.co_argcount]]
        if any(isinstance(a, int) for a in args):  # (text, pos): one piece, not a pass
            return
        if any(isinstance(a, (str, bytes)) and len(a) >= threshold for a in args):
            seen.add(frame)
            passes.append(f"{frame.f_globals.get('__name__')}.{code.co_qualname}")

    sys.setprofile(profile)
    threading.setprofile(profile)
    return passes


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    flags = argv[1 : argv.index("--")]
    args = argv[argv.index("--") + 1 :]
    if args and args[0] not in ("validate",):
        install()
    passes = count_passes(int(flags[flags.index("--passes") + 1])) if "--passes" in flags else None
    if "--trace-alloc" in flags:
        tracemalloc.start()
    from sops_deploy import cli

    code = cli.main(args, dict(os.environ))
    sys.setprofile(None)
    data = {k: dict(v) if isinstance(v, Counter) else v for k, v in COUNTS.items()}
    data["modules"] = sorted(sys.modules)
    data["exit"] = code
    if passes is not None:
        data["passes"] = passes
    if tracemalloc.is_tracing():
        data["peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    out.write_text(json.dumps(data, indent=1))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
