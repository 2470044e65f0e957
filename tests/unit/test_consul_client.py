"""The Consul adapter's per-thread state (no Consul needed: nothing is sent)."""

from __future__ import annotations

import threading

from discovery.consul.client import ConsulClient
from discovery.settings import consul_settings


def test_a_timeout_set_by_one_thread_is_not_seen_by_another():
    """python-consul2 reads one ``timeout`` attribute per request; two threads inside their calls at
    the same moment must each see their own (a long poll's 305 s, a leader query's 10 s)."""
    client = ConsulClient(consul_settings("http://127.0.0.1:1"), request_timeout=10.0)
    http = client._consul.http
    both_inside = threading.Barrier(2)
    seen: dict[str, float] = {}

    def call(name: str, timeout: float) -> None:
        with http.timeout_for(timeout):
            both_inside.wait(5)
            seen[name] = http.timeout
            both_inside.wait(5)

    threads = [threading.Thread(target=call, args=("poll", 305.0)), threading.Thread(target=call, args=("leader", 10.0))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == {"poll": 305.0, "leader": 10.0}
    assert http.timeout == 10.0  # outside any call: the default


def test_each_thread_has_its_own_session():
    client = ConsulClient(consul_settings("http://127.0.0.1:1"))
    sessions = []
    thread = threading.Thread(target=lambda: sessions.append(client._consul.http.session))
    thread.start()
    thread.join(5)
    assert sessions and sessions[0] is not client._consul.http.session
