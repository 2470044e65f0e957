"""Live equals reload: a server option the runtime API cannot set never rides on a reused slot."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from discovery.haproxy.runtime import RuntimeAPI
from testkit import take_port, wait_until

from .apps import get
from .conftest import Stack


class Holding(ThreadingHTTPServer):
    """A webapp whose ``/hold`` answers only once ``release`` is set (at most 60 s): a request in
    flight keeps its server's slot draining for the whole drain grace."""

    daemon_threads = True

    def __init__(self, instance: str, release: threading.Event) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == "/hold":
                    release.wait(60)
                body = f"{server.instance}\n".encode()
                self.send_response(200)
                self.send_header("X-Instance", server.instance)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.instance = instance
        super().__init__(("127.0.0.1", take_port()), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # held requests cut when the test ends are expected


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def register(stack: Stack, instance: str, port: int, tags: list[str]) -> None:
    stack.consul.put(
        "/v1/agent/service/register",
        {"Name": "web", "ID": instance, "Address": "127.0.0.1", "Port": port, "Tags": tags},
    )


def test_a_server_back_within_the_drain_grace_as_backup_runs_as_backup(stack: Stack, release: threading.Event):
    apps = {name: Holding(name, release) for name in ("web-1", "web-2")}
    for name, app in apps.items():
        register(stack, name, app.server_address[1], [])
    wait_until(lambda: len(stack.consul.passing("web")) == 2, 20, what="both registered")
    stack.watch_args = (lambda orig: lambda *more: orig("--drain-grace", "60s", *more))(stack.watch_args)
    stack.start_balancer(live=True)
    assert stack.watch is not None
    wait_until(lambda: "applied 1 backends, 2 servers" in stack.watch.output(), 20, what="the first pass")
    api = RuntimeAPI(stack.admin_socket)
    wait_until(lambda: len(api.servers("web")) == 2, 10, what="HAProxy running both")

    # Requests held in flight on both servers (round robin spreads them): web-2's slot keeps draining.
    holders = [threading.Thread(target=lambda: get(stack, "/hold", timeout=70), daemon=True) for _ in range(4)]
    for t in holders:
        t.start()
    wait_until(lambda: all(api.used_connections("web", n) > 0 for n in apps), 10, what="requests held on both")

    stack.consul.put("/v1/agent/service/deregister/web-2")
    wait_until(lambda: api.servers("web")["web-2"].draining, 10, what="web-2 draining")
    register(stack, "web-2", apps["web-2"].server_address[1], ["backup"])
    wait_until(lambda: "backup" in _line(stack, "web-2"), 10, what="the file to list web-2 as backup")

    # HAProxy runs what the file says: web-2 a backup server, so web-1 takes every request.
    wait_until(lambda: _stat(api, "web-2")["bck"] == "1", 10, what="HAProxy running web-2 as backup")
    seen = {get(stack).headers.get("X-Instance") for _ in range(10)}
    assert seen == {"web-1"}
    release.set()
    for t in holders:
        t.join(10)


def _stat(api: RuntimeAPI, name: str) -> dict[str, str]:
    """``show stat`` of one server of web, column by column (what a user reads on the stats page)."""
    header, *rows = api.ask("show stat web 4 -1").splitlines()
    columns = header[2:].split(",")
    return next(dict(zip(columns, row.split(","), strict=False)) for row in rows if row.split(",")[1] == name)


def _line(stack: Stack, name: str) -> str:
    lines = [ln for ln in stack.output.read_text().splitlines() if ln.strip().startswith(f"server {name} ")]
    return lines[0] if lines else ""
