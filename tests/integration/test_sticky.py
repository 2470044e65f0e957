"""Sticky sessions (disco-sticky) that hold for servers added live, across reloads and removals."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from discovery.haproxy.runtime import RuntimeAPI
from testkit import wait_until

from .apps import Apps, get, start_routed
from .conftest import Stack

STICKY = {"disco-sticky": "SRV"}


@pytest.fixture
def apps(stack: Stack) -> Iterator[Apps]:
    a = Apps(stack.consul)
    yield a
    a.close()


def with_cookie(stack: Stack, cookie: str, count: int = 20) -> set[str]:
    seen = set()
    for _ in range(count):
        response = get(stack, "/", cookies={"SRV": cookie})
        assert response.status_code == 200
        seen.add(response.headers["X-Instance"])
    return seen


def cookie_of(stack: Stack, instance: str) -> str:
    """Fresh requests (round robin) until ``instance`` answers; the cookie it was given."""

    def attempt() -> str | None:
        response = get(stack, "/")
        if response.headers.get("X-Instance") != instance:
            return None
        assert response.cookies.get("SRV"), f"{instance} gave no cookie: {response.headers}"
        return response.cookies["SRV"]

    return str(wait_until(attempt, 10, interval=0, what=f"a request answered by {instance}"))


def test_sticky_cookie_holds_and_a_gone_instance_hands_over(stack: Stack, apps: Apps):
    for name in ("web-1", "web-2", "web-3"):
        apps.start("web", name, meta=STICKY)
    start_routed(stack, ["web"], expect=3)
    first = get(stack, "/")
    instance, cookie = first.headers["X-Instance"], first.cookies["SRV"]
    assert with_cookie(stack, cookie) == {instance}  # 20 requests, one instance

    apps.servers[instance].shutdown()  # it stops (crashes): HAProxy's checks have not seen it yet
    apps.servers[instance].server_close()
    response = get(stack, "/", cookies={"SRV": cookie}, timeout=10)  # refused, retried, redispatched
    assert response.status_code == 200 and response.headers["X-Instance"] != instance

    apps.deregister(instance)  # and leaves the catalog: the cookie now names no server at all
    wait_until(lambda: instance not in stack.servers_in_config(), 10, what=f"{instance} out of the config")

    def left() -> bool:  # draining, in maintenance or deleted (deletion waits for idle connections)
        state = RuntimeAPI(stack.admin_socket).servers("web").get(instance)
        return state is None or state.draining or state.in_maintenance

    wait_until(left, 10, what=f"{instance} taken out of HAProxy's rotation")
    response = get(stack, "/", cookies={"SRV": cookie}, timeout=10)
    assert response.status_code == 200 and response.headers["X-Instance"] != instance
    new_cookie = response.cookies["SRV"]
    assert new_cookie != cookie
    assert with_cookie(stack, new_cookie) == {response.headers["X-Instance"]}


def test_a_server_added_live_gets_a_cookie_that_holds_and_survives_a_reload(stack: Stack, apps: Apps):
    apps.start("web", "web-1", meta=STICKY)
    apps.start("web", "web-2", meta=STICKY)
    start_routed(stack, ["web"], expect=2)
    reloads = stack.reloads()
    apps.start("web", "web-3", meta=STICKY)
    wait_until(lambda: "web-3" in stack.servers_in_config(), 10, what="web-3 in the config")
    cookie = cookie_of(stack, "web-3")
    assert with_cookie(stack, cookie) == {"web-3"}
    assert stack.reloads() == reloads  # added through the runtime API, not a reload
    assert RuntimeAPI(stack.admin_socket).cookies("web")["web-3"] == cookie

    assert stack.haproxy is not None  # a reload reads the file: the key, so the cookie, stays the same
    stack.haproxy.popen.send_signal(signal.SIGUSR2)
    wait_until(lambda: stack.reloads() > reloads, 10, what="HAProxy reloaded")
    assert with_cookie(stack, cookie) == {"web-3"}
    assert RuntimeAPI(stack.admin_socket).cookies("web")["web-3"] == cookie
