"""The Consul adapter used from several threads at once, against a real Consul (core issue, defect 3)."""

from __future__ import annotations

import contextlib
import sys
import threading
import time

from discovery.consul.client import ConsulClient
from discovery.errors import CatalogUnavailable
from discovery.settings import consul_settings
from testkit import ConsulAgent, wait_until


def test_each_call_keeps_its_own_timeout_across_threads(consul: ConsulAgent):
    """Long polls must keep their long read timeout while other threads make short calls.

    The adapter used to set the timeout on the one shared client before each call, so a
    `leader()` from another thread could give a long poll its 0.1 s read timeout.  Threads
    switch very often here (sys.setswitchinterval) so that such a race shows.
    """
    settings = consul_settings(consul.url, token=consul.token or None)
    index, _ = ConsulClient(settings).health_service("nothing-here", index=0, wait=1)
    client = ConsulClient(settings, request_timeout=0.1)
    stop, errors, calls = threading.Event(), [], [0, 0, 0]

    def hammer(slot: int) -> None:
        while not stop.is_set() and calls[slot] < 20000:
            with contextlib.suppress(CatalogUnavailable):  # a short call may time out on a busy machine: it counts
                client.leader()
            calls[slot] += 1

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    hammers = [threading.Thread(target=hammer, args=(i,)) for i in range(3)]
    try:
        for thread in hammers:
            thread.start()
        for _ in range(8):  # nothing changes: each returns after its 0.3 s wait, if its timeout is its own
            started = time.monotonic()
            try:
                client.health_service("nothing-here", index=index, wait=0.3)
            except Exception as exc:
                errors.append(exc)
            assert time.monotonic() - started < 5
    finally:
        sys.setswitchinterval(old_interval)
        stop.set()
        for thread in hammers:
            thread.join(10)
    assert errors == []
    assert client.requests == sum(calls) + 8  # counted from every thread, none lost


def test_checks_index_is_the_index_of_every_check_without_their_bodies(consul: ConsulAgent):
    """The catalog watch's probe: where the checks' index stands, read from a tiny answer."""
    client = ConsulClient(consul_settings(consul.url, token=consul.token or None))
    consul.put(
        "/v1/agent/service/register",
        {"Name": "probe", "ID": "probe-1", "Port": 80, "Check": {"TTL": "30s", "Status": "passing"}},
    )

    def agreed() -> tuple[int, int] | None:
        probe, (index, _) = client.checks_index(), client.health_state_text(index=0, wait=0)
        return (probe, index) if probe == index else None

    before, _ = wait_until(agreed, 10, what="the probe and the checks answer at the same index")
    consul.put("/v1/agent/check/fail/service:probe-1")
    after, _ = wait_until(lambda: (a := agreed()) and a[0] > before and a, 10, what="the index moved by a check")
    assert after > before
