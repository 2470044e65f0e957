"""The Consul adapter: per-thread state, ``?stale`` and ``--max-stale`` (no Consul needed: nothing is sent)."""

from __future__ import annotations

import socket
import threading

import pytest
from consul.base import Response

from discovery.consul.client import ConsulClient, PerThreadHTTPClient, too_stale
from discovery.errors import CatalogUnavailable
from discovery.settings import consul_settings
from testkit import wait_until


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

    threads = [
        threading.Thread(target=call, args=("poll", 305.0)),
        threading.Thread(target=call, args=("leader", 10.0)),
    ]
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


# -- ?stale and --max-stale (a fake transport: nothing is sent) ---------------------------------


@pytest.mark.parametrize(
    "last_contact_ms, max_stale, expected",
    [
        (None, 2.0, False),  # no header: a leader's own answer, never too old
        (0, 2.0, False),
        (2000, 2.0, False),  # exactly max-stale is still fresh enough
        (2001, 2.0, True),
        (150, 0.1, True),
        (50, 0.1, False),
    ],
)
def test_too_stale(last_contact_ms, max_stale, expected):
    assert too_stale(last_contact_ms, max_stale) is expected


class FakeHTTP(PerThreadHTTPClient):
    """python-consul2's HTTP client interface; answers from a script and records each query."""

    def __init__(self, answers: list[tuple[int, dict[str, str], str]]) -> None:
        super().__init__("127.0.0.1", 1, "http", True, timeout=10.0)
        self.answers = answers
        self.asked: list[tuple[str, dict[str, str]]] = []

    def get(self, callback, path, params=None, headers=None):
        self.asked.append((path, dict(params or [])))
        code, response_headers, body = self.answers.pop(0)
        return callback(Response(code, response_headers, body, body.encode()))


def fresh(index: int, last_contact: int | None = 10, body: str = "[]") -> tuple[int, dict[str, str], str]:
    headers = {"X-Consul-Index": str(index), "X-Consul-KnownLeader": "true"}
    if last_contact is not None:
        headers["X-Consul-LastContact"] = str(last_contact)
    return 200, headers, body


def client_with(answers, **kwargs) -> tuple[ConsulClient, FakeHTTP]:
    http = FakeHTTP(answers)
    return ConsulClient(consul_settings("http://127.0.0.1:1"), http=http, **kwargs), http


def test_reads_ask_for_stale_when_told_and_only_then():
    client, http = client_with([fresh(7), fresh(7), fresh(8, body='{"web": []}')], stale=True)
    assert client.health_service("web", tag="blue", index=5, wait=60) == (7, [])
    assert client.health_state_text(index=0)[0] == 7
    assert client.catalog_services(index=7, wait=1.5) == (8, {"web": []})
    assert http.asked == [
        ("/v1/health/service/web", {"passing": "1", "tag": "blue", "index": "5", "wait": "60s", "stale": "1"}),
        ("/v1/health/state/any", {"stale": "1"}),
        ("/v1/catalog/services", {"index": "7", "wait": "1500ms", "stale": "1"}),
    ]
    assert client.stale_reasks == 0 and client.requests == 3

    client, http = client_with([fresh(7, last_contact=None)])
    client.health_service("web", index=0, passing=False)
    assert http.asked == [("/v1/health/service/web", {})]


def test_a_too_old_stale_answer_is_asked_again_once_with_the_default_consistency():
    old = fresh(9, last_contact=5000, body='[{"Service": {"ID": "old"}}]')
    new = fresh(10, last_contact=None, body='[{"Service": {"ID": "new"}}]')
    client, http = client_with([old, new], stale=True, max_stale=2.0)
    index, entries = client.health_service("web", index=9, wait=30, passing=False)
    assert (index, entries) == (10, [{"Service": {"ID": "new"}}])
    assert http.asked == [
        ("/v1/health/service/web", {"index": "9", "wait": "30s", "stale": "1"}),
        ("/v1/health/service/web", {"index": "9", "wait": "30s"}),
    ]
    assert client.stale_reasks == 1 and client.requests == 2


def test_the_re_ask_is_not_repeated_and_its_failure_is_an_outage():
    client, http = client_with([fresh(9, last_contact=5000), (500, {}, "No cluster leader")], stale=True)
    with pytest.raises(CatalogUnavailable, match="No cluster leader"):
        client.catalog_services(index=3, wait=10)
    assert len(http.asked) == 2 and client.stale_reasks == 1
    # Without --stale an old answer is taken as it is (the header is then only the leader's own).
    client, http = client_with([fresh(9, last_contact=5000)])
    assert client.health_state_text(index=0)[0] == 9
    assert len(http.asked) == 1 and client.stale_reasks == 0


def test_the_leader_query_never_asks_for_stale():
    client = ConsulClient(consul_settings("http://127.0.0.1:1"), stale=True)
    assert client._consul.consistency == "default"


def test_interrupt_ends_a_long_poll_at_once():
    """A stopping watcher must not wait out a blocking query (Consul may hold it for minutes): the
    client shuts its connections down and the read fails at once.  A real socket that accepts
    the request and never answers stands in for Consul."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    client = ConsulClient(consul_settings(f"http://127.0.0.1:{server.getsockname()[1]}"))
    failed: list[BaseException] = []

    def poll() -> None:
        try:
            client.health_state_text(index=7, wait=300.0)
        except BaseException as exc:
            failed.append(exc)

    reader = threading.Thread(target=poll, daemon=True)
    reader.start()
    try:
        wait_until(lambda: accepted and accepted[0].recv(4096, socket.MSG_PEEK), 10, what="the request sent")
        assert reader.is_alive()  # blocked: Consul holds the query
        client.interrupt()
        reader.join(10)
        assert not reader.is_alive() and len(failed) == 1 and isinstance(failed[0], CatalogUnavailable)
    finally:
        for sock in (*accepted, server):
            sock.close()
