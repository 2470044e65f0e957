#!/usr/bin/env python3
"""A small webapp to put behind disco: it says who answered, so round robin is visible.

    GET /        200  "web-1 on host-a (127.0.0.1:9001)"   header X-Instance: web-1
    GET /x/y     the same; every answer also has X-Path: the path it was asked for (after any
                 rewrite by the load balancer, e.g. a route with strip=)
    GET /health  200  "ok"; 503 while the file given by --fail-file exists

The fail file lets a person (or a test) make one instance sick without stopping
it, to watch Consul's health check take it out of HAProxy.  Standard library only,
so it runs anywhere Python does.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(instance: str, fail_file: str | None) -> type[BaseHTTPRequestHandler]:
    hostname = socket.gethostname()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "disco-webapp"

        def _send(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Instance", instance)
            self.send_header("X-Path", self.path)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/health":
                if fail_file and os.path.exists(fail_file):
                    self._send(503, "failing\n")
                else:
                    self._send(200, "ok\n")
                return
            host, port = self.server.server_address[:2]
            self._send(200, f"{instance} on {hostname} ({host}:{port})\n")

        do_HEAD = do_GET

        def log_message(self, format: str, *args: object) -> None:  # quiet: one line per request is noise
            pass

    return Handler


class Server(ThreadingHTTPServer):
    """Threaded server that does not print a traceback when a client hangs up early.

    HAProxy's health checks close as soon as they have the status line, which is normal.
    """

    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def make_server(bind: str, port: int, instance: str, fail_file: str | None = None) -> Server:
    return Server((bind, port), make_handler(instance, fail_file))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--bind", default=os.environ.get("BIND", "0.0.0.0"))
    parser.add_argument("--id", default=os.environ.get("INSTANCE_ID") or socket.gethostname())
    parser.add_argument("--fail-file", default=os.environ.get("FAIL_FILE"))
    parser.add_argument(
        "--stop-grace",
        type=float,
        default=float(os.environ.get("STOP_GRACE", "0")),
        help="On SIGTERM keep answering this many seconds (load balancers drain it), then exit.",
    )
    args = parser.parse_args(argv)
    server = make_server(args.bind, args.port, args.id, args.fail_file)
    if args.stop_grace > 0:

        def drain(*_: object) -> None:
            print(f"webapp {args.id}: SIGTERM, answering {args.stop_grace:g}s more", flush=True)
            threading.Timer(args.stop_grace, server.shutdown).start()

        signal.signal(signal.SIGTERM, drain)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"webapp {args.id} listening on {args.bind}:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
