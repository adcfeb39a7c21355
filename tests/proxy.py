"""A TCP proxy on 127.0.0.1 between the client and a real sshd, for fault injection.

Each accepted connection takes the next `Fault` from the queue (none: pass through). A
fault can cut the connection once the client has sent N bytes upstream, or stall it
(stop forwarding both ways but keep the sockets open). `latency` delays every chunk in
both directions, as a slow link does (a round trip costs twice the latency). The proxy
counts connections and the bytes each one carried upstream, so tests can size their cut
points and prove which path traffic took.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    cut_after: int | None = None  # close both sides after this many upstream bytes
    stall_after: int | None = None  # stop forwarding after this many upstream bytes


class Proxy:
    """Forward 127.0.0.1:`port` to 127.0.0.1:`target_port`, applying queued faults."""

    def __init__(self, target_port: int, latency: float = 0.0) -> None:
        self.target_port = target_port
        self.latency = latency
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.faults: deque[Fault] = deque()
        self.upstream_bytes: list[int] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self.upstream_bytes)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        for t in self._threads:
            t.join(timeout=5)

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                fault = self.faults.popleft() if self.faults else Fault()
                index = len(self.upstream_bytes)
                self.upstream_bytes.append(0)
            t = threading.Thread(target=self._serve, args=(client, fault, index), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, client: socket.socket, fault: Fault, index: int) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        sent = 0
        stalled = fault.stall_after == 0
        socks = [client, upstream]
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select(socks, [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if stalled:
                        continue
                    if self.latency:
                        time.sleep(self.latency)
                    if s is upstream:
                        client.sendall(data)
                        continue
                    limit = fault.cut_after if fault.cut_after is not None else fault.stall_after
                    if limit is not None and sent + len(data) >= limit:
                        upstream.sendall(data[: limit - sent])
                        sent = limit
                        with self._lock:
                            self.upstream_bytes[index] = sent
                        if fault.cut_after is not None:
                            return
                        stalled = True
                        continue
                    upstream.sendall(data)
                    sent += len(data)
                    with self._lock:
                        self.upstream_bytes[index] = sent
        except OSError:
            return
        finally:
            for s in socks:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
