"""Routes from the catalog (fabio's tag syntax) on a real Consul, a real HAProxy and real HTTP."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from testkit import take_port, wait_until

from .apps import Apps, get, reached, start_routed
from .conftest import Stack


@pytest.fixture
def apps(stack: Stack) -> Iterator[Apps]:
    a = Apps(stack.consul)
    yield a
    a.close()


def test_host_rules_wildcard_host_and_default_backend(stack: Stack, apps: Apps):
    apps.start("web", "web-1")  # no route tag: Host "web", and default
    apps.start("shop", "shop-1", ("urlprefix-shop.example.com/",))
    apps.start("blog", "blog-1", ("urlprefix-blog.example.com/",))
    apps.start("tenants", "tenant-1", ("urlprefix-*.example.com/",))
    start_routed(stack, ["web", "shop", "blog", "tenants"], expect=4)
    assert reached(stack, 3, host="shop.example.com") == {"shop-1": 3}
    assert reached(stack, 3, host="SHOP.example.com:80") == {"shop-1": 3}  # case and port do not matter
    assert reached(stack, 3, host="blog.example.com") == {"blog-1": 3}
    assert reached(stack, 3, host="acme.example.com") == {"tenant-1": 3}  # the wildcard
    assert reached(stack, 3, host="a.b.example.com") == {"tenant-1": 3}
    assert reached(stack, 3, host="example.com") == {"web-1": 3}  # *.example.com is not example.com
    assert reached(stack, 3, host="elsewhere.org") == {"web-1": 3}  # the first service is the default


def test_path_prefix_with_strip_and_the_most_specific_route_wins(stack: Stack, apps: Apps):
    apps.start("web", "web-1")
    apps.start("api", "api-1", ("urlprefix-/api strip=/api",))
    apps.start("apiv2", "apiv2-1", ("urlprefix-/api/v2",))
    apps.start("shopapi", "shopapi-1", ("urlprefix-shop.example.com/api",))
    apps.start("tenants", "tenant-1", ("urlprefix-*.example.com/api",))
    start_routed(stack, ["web", "api", "apiv2", "shopapi", "tenants"], expect=5)

    response = get(stack, "/api/users?id=7")
    assert (response.headers["X-Instance"], response.headers["X-Path"]) == ("api-1", "/users?id=7")
    assert get(stack, "/api").headers["X-Path"] == "/"  # stripped to the root
    assert get(stack, "/apix").headers["X-Instance"] == "web-1"  # a prefix ends at a segment
    response = get(stack, "/api/v2/items")  # longest path prefix wins
    assert (response.headers["X-Instance"], response.headers["X-Path"]) == ("apiv2-1", "/api/v2/items")
    assert get(stack, "/api/v2/items", host="shop.example.com").headers["X-Instance"] == "shopapi-1"  # exact host
    assert get(stack, "/api/v2/items", host="x.example.com").headers["X-Instance"] == "tenant-1"  # then wildcard
    assert get(stack, "/other", host="shop.example.com").headers["X-Instance"] == "web-1"


def test_redirect_route(stack: Stack, apps: Apps):
    apps.start("web", "web-1")
    apps.start(
        "legacy",
        "legacy-1",
        (
            "urlprefix-/old redirect=301,https://new.example.com/v2$path",
            "urlprefix-/moved redirect=308,https://new.example.com/here",
        ),
    )
    start_routed(stack, ["web", "legacy"], expect=2)
    response = get(stack, "/old/page")
    assert (response.status_code, response.headers["Location"]) == (301, "https://new.example.com/v2/old/page")
    response = get(stack, "/moved")
    assert (response.status_code, response.headers["Location"]) == (308, "https://new.example.com/here")


def test_conflict_is_logged_and_the_lowest_service_name_wins(stack: Stack, apps: Apps):
    apps.start("web", "web-1")
    apps.start("beta", "beta-1", ("urlprefix-/same",))
    apps.start("alpha", "alpha-1", ("urlprefix-/same",))
    start_routed(stack, ["web", "beta", "alpha"], expect=3)
    assert reached(stack, 4, "/same") == {"alpha-1": 4}
    assert stack.watch is not None
    wait_until(
        lambda: "route conflict on /same: claimed by alpha (/same), beta (/same); alpha wins" in stack.watch.output(),
        5,
        what="the conflict logged",
    )
    apps.start("web", "web-2")  # another change: the conflict is not logged again
    wait_until(lambda: "web-2" in stack.servers_in_config(), 10, what="web-2 in the config")
    assert stack.watch.output().count("route conflict on /same") == 1


def test_bad_route_tag_drops_that_route_with_one_line_not_the_service(stack: Stack, apps: Apps):
    apps.start("web", "web-1")
    apps.start("api", "api-1", ("urlprefix-/api", "urlprefix-/admin allow=10.0.0.0/8", "urlprefix-/x\nbind :1"))
    start_routed(stack, ["web", "api"], expect=2)
    assert get(stack, "/api").headers["X-Instance"] == "api-1"
    assert get(stack, "/admin").headers["X-Instance"] == "web-1"  # an unsupported allow= is not ignored
    assert stack.watch is not None
    log = stack.watch.output()
    assert "route dropped from api instance 'api-1'" in log and "'allow' is not supported" in log
    assert "bind :1" not in stack.output.read_text()


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data = self.request.recv(1024)
        self.request.sendall(b"echo:" + data)


def test_tcp_service_is_reached_through_haproxys_port(stack: Stack, apps: Apps):
    echo_port, tcp_port = take_port(), take_port()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", echo_port), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        apps.start("web", "web-1")
        apps.register("echo", "echo-1", (f"urlprefix-:{tcp_port} proto=tcp",), port=echo_port)
        start_routed(stack, ["web", "echo"], f"tcp_ports={tcp_port}", expect=2)

        def echo() -> bytes:
            with socket.create_connection(("127.0.0.1", tcp_port), timeout=3) as conn:
                conn.sendall(b"hello")
                return conn.recv(1024)

        assert wait_until(echo, 10, what="the echo through HAProxy") == b"echo:hello"
        assert get(stack, "/").headers["X-Instance"] == "web-1"
    finally:
        server.shutdown()
        server.server_close()
