"""Routing semantics against fabio's documentation, one table, on a real Consul, HAProxy and HTTP.

One stack serves every row: the routes come from tags registered in Consul, `disco watch` renders
them, HAProxy answers.  Each row is a request (scheme, Host, path, headers) and what fabio's
documentation says the client or the backend sees; where disco differs on purpose (docs/fabio.md)
the row says what disco does.  The HTTP timeout is set short (2 s) so the TCP rows can show that an
idle TCP connection outlives it.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from testkit import ConsulAgent, take_port, wait_until

from .apps import Apps, start_routed
from .conftest import Stack
from .test_https import make_certificates

HTTP_TIMEOUT = 2.0  # --set http_timeout: the HTTP frontends' idle timeout in this stack


class _Headers(BaseHTTPRequestHandler):
    """Answers with the request headers it received, as JSON pairs (repeats kept)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps(list(self.headers.items())).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Instance", "headers-1")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Echo(socketserver.BaseRequestHandler):
    """Echoes every chunk until the peer closes (a long-lived connection, like a database's)."""

    def handle(self) -> None:
        try:
            while data := self.request.recv(1024):
                self.request.sendall(b"echo:" + data)
        except ConnectionError:  # HAProxy's checks and closes
            pass


@dataclass
class Lab:
    stack: Stack
    https_port: int
    tcp_port: int  # a TCP route with no idle timeout asked for
    tcp_short_port: int  # a TCP route whose service asks for disco-idle-timeout=1s
    ca: Path
    servers: list[socketserver.BaseServer] = field(default_factory=list)

    def request(self, row: Row) -> requests.Response:
        scheme, port = ("https", self.https_port) if row.https else ("http", self.stack.lb_port)
        headers = {"Connection": "close", **({"Host": self.fill(row.host)} if row.host else {}), **row.headers}
        return requests.get(
            f"{scheme}://127.0.0.1:{port}{row.path}",
            headers=headers,
            timeout=5,
            allow_redirects=False,
            verify=str(self.ca),
        )

    def fill(self, text: str) -> str:
        return text.format(https=self.https_port, lb=self.stack.lb_port)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("fabio")
    consul = ConsulAgent(tmp)
    consul.start()
    stack, apps = Stack(consul, tmp), Apps(consul)
    ca, certs = make_certificates(tmp)
    lab = Lab(stack, take_port(), take_port(), take_port(), ca)
    try:
        https = lab.https_port
        apps.start("web", "web-1")  # no route tag: Host "web", and the default backend
        apps.start("shop", "shop-1", ("urlprefix-shop.example.com/",))
        apps.start("tenants", "tenant-1", ("urlprefix-*.example.com/",))
        apps.start("api", "api-1", ("urlprefix-/api strip=/api",))
        apps.start("apiv2", "apiv2-1", ("urlprefix-/api/v2",))
        apps.start("shopapi", "shopapi-1", ("urlprefix-shop.example.com/api",))
        apps.start("secure", "secure-1", ("urlprefix-/secure",), meta={"disco-https-only": "true"})
        apps.start(
            "legacy",
            "legacy-1",
            (
                "urlprefix-/old redirect=301,https://new.example.com$path",
                "urlprefix-/old2 redirect=301,https://new.example.com/$path",
                "urlprefix-/old3 redirect=302,https://new.example.com/v2/$path",
                "urlprefix-/here redirect=301,https://new.example.com/here",
                "urlprefix-/bare redirect=301,https://new.example.com",
                "urlprefix-/moved redirect=308,http://www.example.org/moved",
                f"urlprefix-secure.example.com/ redirect=301,https://secure.example.com:{https}$path",
            ),
        )
        headers_port = take_port()
        for server in (
            ThreadingHTTPServer(("127.0.0.1", headers_port), _Headers),
            socketserver.ThreadingTCPServer(("127.0.0.1", echo_port := take_port()), _Echo),
        ):
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
            lab.servers.append(server)
        apps.register("headers", "headers-1", ("urlprefix-/headers",), port=headers_port)
        apps.register("db", "db-1", (f"urlprefix-:{lab.tcp_port} proto=tcp",), port=echo_port)
        apps.register(
            "dbshort",
            "dbshort-1",
            (f"urlprefix-:{lab.tcp_short_port} proto=tcp",),
            meta={"disco-idle-timeout": "1s"},
            port=echo_port,
        )
        start_routed(
            stack,
            ["web", "shop", "tenants", "api", "apiv2", "shopapi", "secure", "legacy", "headers", "db", "dbshort"],
            f"tls_cert_dir={certs}",
            f"https_port={https}",
            f"tcp_ports={lab.tcp_port},{lab.tcp_short_port}",
            f"http_timeout={HTTP_TIMEOUT:g}s",
            expect=11,
        )
        yield lab
    finally:
        for running in lab.servers:
            running.shutdown()
            running.server_close()
        apps.close()
        stack.close()
        consul.stop()


@dataclass(frozen=True)
class Row:
    """A request and what the client sees (instance and path at the backend, or a redirect)."""

    id: str
    path: str
    host: str | None = None  # {lb} and {https}: HAProxy's HTTP and HTTPS ports
    https: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    instance: str | None = None  # X-Instance of the answer
    backend_path: str | None = None  # X-Path: the path (and query) the backend was asked for
    status: int = 200
    location: str | None = None


ROWS = [
    # host: exact, case, port in Host, wildcard (any depth, not the apex), unknown -> the first service
    Row("host-exact", "/", "shop.example.com", instance="shop-1"),
    Row("host-case", "/", "SHOP.Example.COM", instance="shop-1"),
    Row("host-port", "/", "shop.example.com:8080", instance="shop-1"),
    Row("host-wildcard", "/", "acme.example.com", instance="tenant-1"),
    Row("host-wildcard-deeper", "/", "a.b.example.com", instance="tenant-1"),
    Row("host-wildcard-case-port", "/", "ACME.example.com:80", instance="tenant-1"),
    Row("host-wildcard-not-the-apex", "/", "example.com", instance="web-1"),
    Row("host-unknown-default", "/", "elsewhere.org", instance="web-1"),
    Row("host-service-name", "/", "web", instance="web-1"),
    # path prefix: at a segment boundary, the longest wins; a host route before a no-host route
    Row("path-prefix", "/api/v2/items", instance="apiv2-1", backend_path="/api/v2/items"),
    Row("path-segment-boundary", "/apix", instance="web-1"),
    Row("path-host-beats-no-host", "/api/v2/items", "shop.example.com", instance="shopapi-1"),
    Row("path-wildcard-beats-no-host", "/api/v2/items", "x.example.com", instance="tenant-1"),
    Row("path-host-other-path", "/other", "shop.example.com", instance="shop-1"),
    # strip: the prefix goes, the query string stays
    Row("strip", "/api/users", instance="api-1", backend_path="/users"),
    Row("strip-query-kept", "/api/users?id=7&x=a%20b", instance="api-1", backend_path="/users?id=7&x=a%20b"),
    Row("strip-to-root", "/api", instance="api-1", backend_path="/"),
    Row("strip-to-root-query", "/api?id=7", instance="api-1", backend_path="/?id=7"),
    # redirect: $path is the request's path, the query string follows it, no double slash
    Row("redirect-path-query", "/old/page?id=7", status=301, location="https://new.example.com/old/page?id=7"),
    Row("redirect-no-double-slash", "/old2/page?id=7", status=301, location="https://new.example.com/old2/page?id=7"),
    Row("redirect-prefix-slash", "/old3/a", status=302, location="https://new.example.com/v2/old3/a"),
    Row("redirect-fixed-url", "/here?x=1", status=301, location="https://new.example.com/here"),
    Row("redirect-empty-path", "/bare", status=301, location="https://new.example.com/"),
    Row("redirect-other-host", "/moved", "other.example.org", status=308, location="http://www.example.org/moved"),
    # ... and never onto itself: a redirect to the request's own scheme, host and path is skipped
    Row("redirect-loop-skipped", "/moved", "www.example.org", instance="web-1"),
    Row("redirect-loop-skipped-port", "/moved", "WWW.example.org:80", instance="web-1"),
    Row(
        "redirect-loop-other-path", "/moved/on", "www.example.org", status=308, location="http://www.example.org/moved"
    ),
    Row(
        "redirect-to-https",
        "/x?y=1",
        "secure.example.com:{lb}",
        status=301,
        location="https://secure.example.com:{https}/x?y=1",
    ),
    Row("redirect-to-https-loop-skipped", "/x?y=1", "secure.example.com:{https}", https=True, instance="tenant-1"),
    # HTTPS-only (disco-https-only): plain HTTP answers 301 to the same URL on HTTPS
    Row(
        "https-only-redirects",
        "/secure/cart?x=1",
        status=301,
        location="https://127.0.0.1:{https}/secure/cart?x=1",
    ),
    Row("https-only-served-on-https", "/secure/cart?x=1", https=True, instance="secure-1"),
    Row("https-other-routes", "/api/users", https=True, instance="api-1", backend_path="/users"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_route(lab: Lab, row: Row) -> None:
    response = lab.request(row)
    seen = (response.status_code, response.headers.get("X-Instance"), response.headers.get("Location"))
    assert seen == (row.status, row.instance, row.location and lab.fill(row.location))
    if row.backend_path is not None:
        assert response.headers["X-Path"] == row.backend_path


FORGED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Port": "1",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Server": "evil",
    "x-FORWARDED-scheme": "https",
    "X-Real-IP": "203.0.113.9",
    "Forwarded": "for=203.0.113.9;proto=https",
}


@pytest.mark.parametrize(
    "https, sent",
    [(False, {}), (False, FORGED), (True, {**FORGED, "X-Forwarded-Proto": "http"})],
    ids=["http", "http-forged", "https-forged"],
)
def test_forwarded_headers_are_haproxys_never_the_clients(lab: Lab, https: bool, sent: dict[str, str]) -> None:
    response = lab.request(Row("headers", "/headers", https=https, headers=sent))
    assert response.headers["X-Instance"] == "headers-1"
    seen: dict[str, list[str]] = {}
    for name, value in response.json():
        seen.setdefault(name.lower(), []).append(value)
    forwarded = {name: values for name, values in seen.items() if name.startswith("x-forwarded-")}
    assert forwarded == {
        "x-forwarded-for": ["127.0.0.1"],
        "x-forwarded-proto": ["https" if https else "http"],
        "x-forwarded-port": [str(lab.https_port if https else lab.stack.lb_port)],
    }
    assert seen.get("x-real-ip") == ["127.0.0.1"]
    assert "forwarded" not in seen


def _connect(port: int) -> socket.socket:
    def echo() -> socket.socket | None:
        conn = socket.create_connection(("127.0.0.1", port), timeout=5)
        conn.sendall(b"hello")
        if conn.recv(1024) == b"echo:hello":
            return conn
        conn.close()
        return None

    return wait_until(echo, 10, what=f"an echo through HAProxy's TCP port {port}")  # type: ignore[no-any-return]


def test_tcp_route_has_no_idle_timeout(lab: Lab) -> None:
    """An idle connection outlives the HTTP timeout by far, then still works (fabio sets none)."""
    conn = _connect(lab.tcp_port)
    with conn:
        idle = 3 * HTTP_TIMEOUT
        conn.settimeout(idle)
        start = time.monotonic()
        try:
            data = conn.recv(1024)  # nothing is sent: HAProxy closing it would end this early with b""
        except TimeoutError:
            data = None
        assert data is None, f"HAProxy closed the idle TCP connection after {time.monotonic() - start:.1f}s"
        conn.settimeout(5)
        conn.sendall(b"again")
        assert conn.recv(1024) == b"echo:again"


def test_tcp_route_idle_timeout_when_the_service_asks(lab: Lab) -> None:
    """disco-idle-timeout=1s: HAProxy closes the idle connection after about a second."""
    conn = _connect(lab.tcp_short_port)
    with conn:
        conn.settimeout(10 * HTTP_TIMEOUT)
        start = time.monotonic()
        assert conn.recv(1024) == b""  # closed by HAProxy, not the test's deadline
        assert time.monotonic() - start < 10 * HTTP_TIMEOUT
    config = lab.stack.output.read_text()
    assert "timeout client 1s" in config and "timeout server 1s" in config
