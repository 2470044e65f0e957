"""Live apply: server changes through HAProxy's runtime API, with no reload, on real processes."""

from __future__ import annotations

import signal

from discovery.haproxy.runtime import RuntimeAPI
from testkit import instances_reached, wait_until

from .conftest import Stack


def start(stack: Stack, *names: str) -> None:
    for name in names:
        stack.add_webapp(name)
    wait_until(lambda: len(stack.consul.passing("web")) == len(names), 20, what="instances passing")
    stack.start_balancer(live=True)
    wait_until(lambda: set(instances_reached(stack.lb, 3 * len(names))) == set(names), 20, what="all reached")
    # The watcher has started and made its first pass (at start it reads HAProxy back and would
    # already repair a drift made before then).
    assert stack.watch is not None
    wait_until(
        lambda: f"applied 1 backends, {len(names)} servers" in stack.watch.output(), 20, what="the watcher's first pass"
    )


def test_added_and_removed_instances_are_applied_without_a_reload(stack: Stack):
    start(stack, "web-1", "web-2")
    reloads = stack.reloads()
    stack.add_webapp("web-3")
    wait_until(lambda: "web-3" in instances_reached(stack.lb, 9), 20, what="web-3 answering")
    # Routing changes first; the validated file follows within a few tens of milliseconds.
    wait_until(lambda: stack.servers_in_config() == {"web-1", "web-2", "web-3"}, 5, what="the file to say so")

    stack.registers["web-1"].stop()
    wait_until(lambda: "web-1" not in instances_reached(stack.lb, 9), 10, what="web-1 gone from traffic")
    assert set(instances_reached(stack.lb, 30)) == {"web-2", "web-3"}
    wait_until(lambda: stack.servers_in_config() == {"web-2", "web-3"}, 5, what="the file to say so")
    assert stack.reloads() == reloads
    assert stack.watch is not None and "applied live" in stack.watch.output()

    api = RuntimeAPI(stack.admin_socket)  # drained, then deleted after its grace time
    wait_until(lambda: set(api.servers("web")) == {"web-2", "web-3"}, 10, what="web-1 deleted")
    assert stack.reloads() == reloads  # the deletion too went through the runtime API


def test_reload_after_live_changes_yields_the_same_servers(stack: Stack):
    start(stack, "web-1")
    stack.add_webapp("web-2")
    wait_until(lambda: "web-2" in instances_reached(stack.lb, 6), 20, what="web-2 answering")
    wait_until(lambda: stack.servers_in_config() == {"web-1", "web-2"}, 5, what="the file to say so")
    assert stack.haproxy is not None
    reloads = stack.reloads()
    stack.haproxy.popen.send_signal(signal.SIGUSR2)  # what any reload does: HAProxy rereads the file
    wait_until(lambda: stack.reloads() > reloads, 10, what="HAProxy reloaded")
    assert set(instances_reached(stack.lb, 12)) == {"web-1", "web-2"}
    assert stack.reloads() == reloads + 1  # ours only: the watcher did not reload on top of it


def test_drift_is_repaired_by_a_reload(stack: Stack):
    start(stack, "web-1", "web-2")
    api = RuntimeAPI(stack.admin_socket)
    api.delete_server("web", "web-2")  # someone removes a server by hand
    reloads = stack.reloads()
    stack.add_webapp("web-3")  # the next change reads the backend back, sees the drift, reloads
    wait_until(
        lambda: set(instances_reached(stack.lb, 12)) == {"web-1", "web-2", "web-3"}, 20, what="all three served again"
    )
    assert stack.watch is not None and "live update failed" in stack.watch.output()
    assert stack.reloads() == reloads + 1  # one reload repaired it; no retries, no second one
