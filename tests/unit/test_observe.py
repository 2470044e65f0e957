"""Metrics and health are event subscribers: fed events here, read back as Prometheus and JSON would."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
from prometheus_client import generate_latest

from discovery.errors import ConfigError, ValidationError
from discovery.haproxy.plan import Add, ServerLine
from discovery.observe.health import Health, Server
from discovery.observe.metrics import Metrics
from discovery.pipeline.decide import Action, Decision
from discovery.pipeline.events import (
    Applied,
    ChangeSeen,
    ConsulRequest,
    Counted,
    Decided,
    Failed,
    Heartbeat,
    Held,
    Released,
    Stopping,
)
from testkit import take_port, wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


LIVE = Decision(Action.LIVE, "only servers changed", (Add(ServerLine("web", "a", "10.0.0.1", 80, ())),))


def test_stale_answers_asked_again_are_counted_when_scraped():
    reasked = [0]
    m = Metrics(("web",), "0", stale_reasks=lambda: reasked[0])
    assert value(m, "disco_consul_stale_reasks_total") == 0
    reasked[0] = 3
    assert value(m, "disco_consul_stale_reasks_total") == 3
    assert value(Metrics(("web",), "0"), "disco_consul_stale_reasks_total") is None  # no client, no series


def test_metrics_follow_the_events():
    clock = Clock()
    m = Metrics(("web",), "0.1.0", clock=clock, wall=lambda: 1234.0)
    m(ConsulRequest("/v1/health/service", "changed"))
    m(Counted("web", (("passing", 2), ("critical", 1)), (("not_passing", 1),)))
    m(ChangeSeen("web", 2, seen_at=99.5))
    assert value(m, "disco_pending") == 1
    m(Decided("1 backends, 2 servers", LIVE))
    clock.now = 100.25
    m(Applied("1 backends, 2 servers", "applied live", 0.01, True, (("web", 2),)))
    assert value(m, "disco_consul_requests_total", endpoint="/v1/health/service", result="changed") == 1
    assert value(m, "disco_consul_up") == 1
    assert value(m, "disco_catalog_instances", service="web", status="critical") == 1
    assert value(m, "disco_instances_left_out", service="web", reason="not_passing") == 1
    assert value(m, "disco_applies_total", method="live", result="success") == 1
    assert value(m, "disco_backend_servers", backend="web") == 2
    assert value(m, "disco_change_to_applied_seconds_sum") == pytest.approx(0.75)
    assert value(m, "disco_last_apply_success_timestamp_seconds") == 1234.0
    assert value(m, "disco_pending") == 0

    # A live decision that ends in a reload: one failed live apply, one successful reload.
    m(Decided("x", LIVE))
    m(Applied("x", "reloaded", 0.2, True, (("web", 3),)))
    assert value(m, "disco_applies_total", method="live", result="failure") == 1
    assert value(m, "disco_applies_total", method="reload", result="success") == 1
    m(Decided("x", Decision(Action.RELOAD, "config changed")))
    m(Failed("apply", ValidationError("rejected"), "the live config is unchanged"))
    assert value(m, "disco_applies_total", method="reload", result="failure") == 1

    m(Held("web", 3, 0, "every instance is gone", 30.0))
    assert value(m, "disco_gate_held", service="web") == 1
    m(Released("web", 0, 30.0, ended=False))
    assert value(m, "disco_gate_held", service="web") == 0
    m(ConsulRequest("/v1/health/service", "error"))
    assert value(m, "disco_consul_up") == 0
    text = generate_latest(m.registry).decode()
    assert "disco_build_info{" in text and "_total" in text


def test_health_ready_after_the_first_apply_and_not_while_stopping():
    clock = Clock()
    h = Health(stale_after=5.0, clock=clock, wall=lambda: 1234.0)
    assert h.live()[0] is False  # no turn of the loop yet
    h(Heartbeat(clock.now))
    assert h.live()[0] is True
    clock.now += 6
    assert h.live()[0] is False
    h(ConsulRequest("/v1/health/service", "error"))
    ok, body = h.ready()
    assert not ok and body["consul_reachable"] is False
    h(Applied("s", "unchanged", 0.0, True))
    ok, body = h.ready()
    assert ok and body["last_apply"] == 1234.0 and body["pending"] is False
    h(Held("web", 2, 0, "Consul has no leader", 30))
    assert h.ready()[1]["held_services"] == {"web": "Consul has no leader"} and h.ready()[1]["pending"]
    h(Stopping())
    assert h.ready()[0] is False


def test_server_answers_and_a_taken_address_is_a_config_error():
    h = Health(clock=lambda: 1.0)
    h(Heartbeat(1.0))
    server = Server(("127.0.0.1", take_port()), h, Metrics(("web",), "0").registry)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        base = f"http://{server.address}"
        assert requests.get(f"{base}/healthz", timeout=2).status_code == 200
        assert requests.get(f"{base}/readyz", timeout=2).status_code == 503
        assert "disco_pending" in requests.get(f"{base}/metrics", timeout=2).text
        with pytest.raises(ConfigError, match=f"--listen {server.address}: cannot listen there"):
            Server(("127.0.0.1", int(server.address.rsplit(":", 1)[1])), h, Metrics((), "0").registry)
    finally:
        stop.set()
        thread.join(2)
    assert not thread.is_alive()
    with socket.socket() as probe:  # closed on the way out (TIME_WAIT of the requests aside)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", int(server.address.rsplit(":", 1)[1])))


def test_a_discovered_service_that_leaves_takes_its_label_series_along():
    m = Metrics(("web",), "0")
    for name in ("web", "shop"):
        m(Counted(name, (("passing", 1),), ()))
    m(Applied("2 backends", "reloaded", 0.1, True, (("web", 1), ("shop", 1))))
    assert value(m, "disco_backend_servers", backend="shop") == 1
    m(Counted("shop", (("passing", 0),), ()))
    m(Applied("1 backends", "reloaded", 0.1, True, (("web", 1),)))
    assert value(m, "disco_backend_servers", backend="shop") is None
    assert value(m, "disco_catalog_instances", service="shop", status="passing") is None
    assert value(m, "disco_catalog_instances", service="web", status="passing") == 1  # --service: always there
    m(Applied("0 backends", "reloaded", 0.1, True, ()))
    assert value(m, "disco_catalog_instances", service="web", status="passing") == 1


def test_past_its_workers_the_server_answers_busy_at_once_and_stops_with_connections_open():
    h = Health(clock=lambda: 1.0)
    h(Heartbeat(1.0))
    server = Server(("127.0.0.1", take_port()), h, Metrics(("web",), "0").registry, workers=2, read_timeout=30)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    host, port = server.address.rsplit(":", 1)
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(2)]
    try:
        base = f"http://{server.address}"
        busy = wait_until(lambda: [r for r in [_get(f"{base}/healthz")] if r is not None and r.status_code == 503], 5)
        assert b"busy" in busy[0].content
        idle[0].close()  # a worker comes free
        wait_until(lambda: (_get(f"{base}/healthz") or busy[0]).status_code == 200, 5, what="a free worker")
    finally:
        started = time.monotonic()
        stop.set()
        thread.join(5)
        for sock in idle:
            sock.close()
    assert not thread.is_alive() and time.monotonic() - started < 2.5  # the idle connection did not hold it


def _get(url: str) -> requests.Response | None:
    try:
        return requests.get(url, timeout=2)
    except requests.ConnectionError:  # refused before the request was read: the connection is reset
        return None
