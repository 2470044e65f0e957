"""The dashboard's HTTP side: the page and its assets (package data), its event stream, its JSON.

- ``/``: the page (``static/index.html``, hand-written, with ``dashboard.css`` and ``dashboard.js``:
  no build step, no CDN, nothing fetched from elsewhere; a Content-Security-Policy says so);
- ``/events``: Server-Sent Events, one ``state`` message per new snapshot and a ``ping`` every
  ``PING`` seconds, so the page notices a watcher that is gone.  At most ``max_streams`` at a time
  (the HTTP server's stream slots): past that, ``503``;
- ``/state.json``: the current snapshot, for scripts and tests.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from importlib.resources import files

from .board import Board
from .httpd import BoundedHTTPServer

#: Seconds between keep-alive messages on an idle stream; the page calls a stream silent for 3 of them lost.
PING = 2.0
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def asset(name: str) -> bytes:
    return files("discovery.observe").joinpath("static", name).read_bytes()


def page_weight() -> int:
    """Bytes of the page and its assets, uncompressed (the docs state it; a test keeps it small)."""
    return sum(len(asset(name)) for name, _ in ASSETS.values())


class Dashboard:
    def __init__(self, board: Board, stop: threading.Event) -> None:
        self.board = board
        self.stop = stop
        self._assets = {path: (asset(name), kind) for path, (name, kind) in ASSETS.items()}

    def handles(self, path: str) -> bool:
        return path in self._assets or path in ("/events", "/state.json")

    def answer(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        if path in self._assets:
            body, kind = self._assets[path]
            send(handler, 200, kind, body)
        elif path == "/state.json":
            payload = self.board.current()
            if payload is None:
                send(handler, 503, "text/plain; charset=utf-8", b"no snapshot yet: try again\n")
            else:
                send(handler, 200, "application/json", payload)
        else:
            self.stream(handler)

    def stream(self, handler: BaseHTTPRequestHandler) -> None:
        httpd = handler.server
        assert isinstance(httpd, BoundedHTTPServer)
        if not httpd.to_stream(handler.connection):
            send(handler, 503, "text/plain; charset=utf-8", b"too many dashboards open; close one and reload\n")
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("X-Accel-Buffering", "no")
        for key, value in SECURITY_HEADERS.items():
            handler.send_header(key, value)
        handler.end_headers()
        self.board.opened()
        try:
            handler.wfile.write(b"retry: 1000\n\n")
            handler.wfile.flush()
            seen = 0
            while not self.stop.is_set():
                got = self.board.next(seen, PING)
                if got is None:
                    handler.wfile.write(b"event: ping\ndata: {}\n\n")
                else:
                    seen, payload = got
                    handler.wfile.write(b"event: state\ndata: " + payload + b"\n\n")
                handler.wfile.flush()
        except OSError:
            pass  # the page was closed (or the server stops)
        finally:
            self.board.closed()


def send(handler: BaseHTTPRequestHandler, status: int, kind: str, body: bytes, **headers: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(body)))
    for key, value in {**SECURITY_HEADERS, **headers}.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)
