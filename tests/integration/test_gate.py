"""The sanity gate on real processes: a service losing every instance at once."""

from __future__ import annotations

import time

import requests

from testkit import instances_reached, wait_until

from .conftest import Stack


def start(stack: Stack, *extra: str) -> None:
    stack.watch_args = (lambda orig: lambda *more: orig(*extra, *more))(stack.watch_args)
    for name in ("web-1", "web-2"):
        stack.add_webapp(name)
    wait_until(lambda: len(stack.consul.passing("web")) == 2, 20, what="2 instances passing")
    stack.start_balancer(live=True)
    wait_until(lambda: set(instances_reached(stack.lb, 6)) == {"web-1", "web-2"}, 20, what="both reached")
    assert stack.watch is not None
    wait_until(lambda: "applied 1 backends, 2 servers" in stack.watch.output(), 20, what="the watcher's first view")


def deregister_all(stack: Stack) -> float:
    """Stop both instances' `disco register` (SIGTERM: they deregister) at the same time."""
    import signal

    t = time.monotonic()
    for name in ("web-1", "web-2"):
        stack.registers[name].signal(signal.SIGTERM)
    for name in ("web-1", "web-2"):
        assert stack.registers[name].popen.wait(10) == 0
    return t


def test_when_empty_keep_holds_the_last_servers_for_the_grace_time(stack: Stack):
    start(stack, "--when-empty", "keep", "--gate-grace", "4s")
    t = deregister_all(stack)
    assert stack.watch is not None
    wait_until(lambda: "-> 0 instances (every instance is gone)" in stack.watch.output(), 10, what="the hold")
    # The two deregistrations may arrive one by one (2 -> 1 is an ordinary change) or together;
    # either way the last known servers are still in the config and still serve while held.
    # (The pass applying 2 -> 1 may still be on its way when the hold is logged: wait for HAProxy to match the file.)
    kept = wait_until(
        lambda: (k := stack.servers_in_config()) and set(instances_reached(stack.lb, 6)) == k and k,
        10,
        what="the kept servers serving",
    )
    assert kept <= {"web-1", "web-2"}
    wait_until(lambda: stack.servers_in_config() == set(), 15, what="the release after the grace time")
    assert time.monotonic() - t >= 3.5
    wait_until(lambda: requests.get(stack.lb, timeout=3).status_code == 503, 10, what="an empty backend")
    assert "released the held change of web" in stack.watch.output()


def test_instances_coming_back_end_the_hold(stack: Stack):
    start(stack, "--when-empty", "keep", "--gate-grace", "60s")
    deregister_all(stack)
    assert stack.watch is not None
    wait_until(lambda: "holding the change of web" in stack.watch.output(), 10, what="the hold")
    stack.add_webapp("web-3")
    wait_until(lambda: stack.servers_in_config() == {"web-3"}, 15, what="the new instance applied")
    assert "hold on web ended: 1 instances now" in stack.watch.output()


def test_when_empty_empty_applies_at_once(stack: Stack):
    start(stack, "--when-empty", "empty")
    deregister_all(stack)
    wait_until(lambda: stack.servers_in_config() == set(), 15, what="the empty backend")
    wait_until(lambda: requests.get(stack.lb, timeout=3).status_code == 503, 15, what="503 from HAProxy")


def test_a_restarted_watcher_does_not_empty_what_haproxy_serves(stack: Stack):
    """The watcher restarts while Consul lists no instance of web (a rebuilt or still-syncing Consul
    looks the same): its first view is judged against the servers HAProxy runs, so it is held for
    the grace time while HAProxy keeps serving them, instead of emptying the backend at once."""
    start(stack, "--gate-grace", "4s")
    assert stack.watch is not None
    stack.watch.stop()
    deregister_all(stack)  # the webapps still answer; Consul no longer lists them
    wait_until(lambda: stack.consul.passing("web") == [], 10, what="web gone from Consul")
    second = stack.watch = stack.spawn(stack.watch_args("--master-socket", str(stack.master_socket)), "watch-again")
    wait_until(
        lambda: "holding the change of web: 2 -> 0 instances (every instance is gone)" in second.output(),
        20,
        what="the first view held",
    )
    assert stack.servers_in_config() == {"web-1", "web-2"}
    assert set(instances_reached(stack.lb, 6)) == {"web-1", "web-2"}  # still served while held
    wait_until(lambda: stack.servers_in_config() == set(), 20, what="the release after the grace time")
    assert "released the held change of web after" in second.output()
    wait_until(lambda: requests.get(stack.lb, timeout=3).status_code == 503, 10, what="an empty backend")
