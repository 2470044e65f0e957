"""An HTTP server that one slow client cannot starve: bounded workers and a deadline on every request's head.

The accept loop (:meth:`BoundedHTTPServer.serve`) runs on a thread the watcher owns and hands each
connection to a worker thread of its own, at most ``workers`` at a time.  Past that, a connection is
answered ``503`` at once and closed: a probe fails fast instead of hanging behind others.

A connection must deliver its request line and headers within ``read_timeout`` seconds in all: a
client that trickles one byte a second is cut off when that time is up, not waited for byte by byte
(the accept loop shuts such sockets down).  Every later read or write on it has the same timeout.

A long-lived answer (the dashboard's Server-Sent Events) moves from its worker slot to one of
``streams`` stream slots (:meth:`BoundedHTTPServer.to_stream`), so open dashboards never hold the
slots that ``/healthz`` and ``/readyz`` are answered from.

Stopping: :meth:`serve` returns once the stop event is set, after closing the listening socket,
shutting every open connection down and joining the worker threads.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

log = logging.getLogger(__name__)

BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: 34\r\n\r\nbusy: every worker is answering.\r\n"
)


@dataclass
class _Conn:
    thread: threading.Thread | None = None
    deadline: float | None = None  # until the request's head is read
    stream: bool = False  # holds a stream slot instead of a worker slot


class BoundedHTTPServer(HTTPServer):
    """``HTTPServer`` with a bounded worker thread per connection, a head deadline and stream slots."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        workers: int = 16,
        streams: int = 32,
        read_timeout: float = 5.0,
    ) -> None:
        super().__init__(address, handler)
        self.timeout = 0.1  # the accept loop looks at the stop event and the deadlines this often
        self.read_timeout = read_timeout
        self._workers = threading.BoundedSemaphore(workers)
        self._streams = threading.BoundedSemaphore(streams)
        self._lock = threading.Lock()
        self._open: dict[socket.socket, _Conn] = {}

    # -- the accept loop ---------------------------------------------------------------

    def serve(self, stop: threading.Event) -> None:
        """Accept connections until ``stop`` is set; then close everything and join the workers."""
        try:
            while not stop.is_set():
                self.handle_request()
                self._cut_slow_heads()
        finally:
            self.server_close()
            self._close_all()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Called by the accept loop for each new connection: a worker thread, or 503 at once."""
        if not self._workers.acquire(blocking=False):
            _refuse(request)
            self.shutdown_request(request)
            return
        request.settimeout(self.read_timeout)
        conn = _Conn(deadline=time.monotonic() + self.read_timeout)
        conn.thread = threading.Thread(
            target=self._work, args=(request, client_address, conn), name="http-request", daemon=True
        )
        with self._lock:
            self._open[request] = conn
        conn.thread.start()

    def _work(self, request: socket.socket, client_address: Any, conn: _Conn) -> None:
        try:
            self.finish_request(request, client_address)
        except OSError as exc:  # the client went away, or was cut off: nothing to answer
            log.debug("connection from %s ended: %s", client_address, exc)
        except Exception:
            log.exception("answering %s failed", client_address)
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._open.pop(request, None)
            (self._streams if conn.stream else self._workers).release()

    def _cut_slow_heads(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [sock for sock, conn in self._open.items() if conn.deadline is not None and conn.deadline < now]
            for sock in late:
                self._open[sock].deadline = None
        for sock in late:
            log.debug("cutting off a client that sent no complete request within %.1fs", self.read_timeout)
            _shut(sock)

    def _close_all(self, timeout: float = 1.0) -> None:
        with self._lock:
            conns = dict(self._open)
        for sock in conns:
            _shut(sock)
        deadline = time.monotonic() + timeout
        for conn in conns.values():
            if conn.thread is not None:
                conn.thread.join(max(0.0, deadline - time.monotonic()))

    # -- for handlers ------------------------------------------------------------------

    def head_read(self, sock: socket.socket) -> None:
        """The request line and headers are in: the head deadline no longer applies."""
        with self._lock:
            conn = self._open.get(sock)
            if conn is not None:
                conn.deadline = None

    def to_stream(self, sock: socket.socket) -> bool:
        """Move this connection from its worker slot to a stream slot; False when every stream slot is taken."""
        if not self._streams.acquire(blocking=False):
            return False
        with self._lock:
            conn = self._open.get(sock)
            if conn is None or conn.stream:
                self._streams.release()
                return conn is not None
            conn.stream = True
        self._workers.release()
        return True


def _refuse(sock: socket.socket) -> None:
    try:
        sock.settimeout(0.5)
        sock.sendall(BUSY)
    except OSError:
        pass


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
