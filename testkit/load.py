"""A steady, bounded stream of fresh connections through the load balancer, and the windows in
which HAProxy itself was down (a request failing inside one is expected; outside, it is not).

Plain sockets (one ``GET`` with ``Connection: close`` each): cheap enough that a few threads hold
a steady rate on a busy machine.  A request fails when the connection is refused or reset, or
the answer is not HTTP, or its status is 502/504 (HAProxy could not reach a server it chose).
503 (no server for the route: every instance of a service unhealthy) is counted apart.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

__all__ = ["DownWindows", "Load", "LoadCounts"]


@dataclass
class DownWindows:
    """Periods in which HAProxy was down on purpose (monotonic clock), with a margin after each."""

    margin: float = 1.0
    spans: list[tuple[float, float]] = field(default_factory=list)
    _open: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self) -> None:
        with self._lock:
            self._open = time.monotonic()

    def end(self) -> None:
        with self._lock:
            if self._open is not None:
                self.spans.append((self._open, time.monotonic() + self.margin))
                self._open = None

    def inside(self, at: float) -> bool:
        with self._lock:
            if self._open is not None and at >= self._open:
                return True
            return any(start <= at <= end for start, end in self.spans)


@dataclass
class LoadCounts:
    sent: int = 0
    failed_inside: int = 0  # while HAProxy was down on purpose
    failed_outside: int = 0
    unavailable: int = 0  # 503: no server for the route
    failures: list[str] = field(default_factory=list)  # the first few failures outside, for the report


class Load:
    """``threads`` workers, each at most ``rate / threads`` requests a second, to ``paths`` in turn."""

    def __init__(
        self, port: int, paths: list[str], windows: DownWindows, rate: float = 100.0, threads: int = 4
    ) -> None:
        self.port = port
        self.paths = paths
        self.windows = windows
        self.interval = threads / rate
        self.threads = threads
        self.counts = LoadCounts()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self, limit: float) -> None:
        """Run until stopped, and at most ``limit`` seconds."""
        end = time.monotonic() + limit
        for n in range(self.threads):
            worker = threading.Thread(target=self._run, args=(n, end), name=f"load-{n}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> LoadCounts:
        self._stop.set()
        for worker in self._workers:
            worker.join(10)
        return self.counts

    def _run(self, n: int, end: float) -> None:
        i = n
        next_at = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < end:
            path = self.paths[i % len(self.paths)]
            i += 1
            started = time.monotonic()
            result = self._one(path)
            self._count(started, time.monotonic(), path, result)
            next_at = max(next_at + self.interval, time.monotonic() - 1.0)
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _one(self, path: str) -> str:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                head = b""
                while b"\r\n" not in head and len(head) < 4096:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    head += chunk
        except OSError as exc:
            return f"error {type(exc).__name__}: {exc}"
        words = head.split(b"\r\n", 1)[0].split()
        if len(words) < 2 or not words[0].startswith(b"HTTP/"):
            return f"not HTTP: {head[:60]!r}"
        return words[1].decode()

    def _count(self, started: float, finished: float, path: str, result: str) -> None:
        with self._lock:
            self.counts.sent += 1
            if result == "503":
                self.counts.unavailable += 1
            elif result[:1] not in ("2", "3", "4") or result in ("502", "504"):
                if self.windows.inside(started) or self.windows.inside(finished):
                    self.counts.failed_inside += 1
                else:
                    self.counts.failed_outside += 1
                    if len(self.counts.failures) < 20:
                        self.counts.failures.append(f"{time.strftime('%H:%M:%S')} {path}: {result}")
