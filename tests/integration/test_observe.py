"""`disco watch --listen`: a real Prometheus scrapes /metrics; /healthz and /readyz through
Consul going away and coming back."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import requests

from testkit import take_port, wait_until

from .conftest import Stack


def register(stack: Stack, sid: str, port: int) -> None:
    stack.consul.put(
        "/v1/agent/service/register", {"Name": stack.service, "ID": sid, "Address": "127.0.0.1", "Port": port}
    )


def listen(stack: Stack) -> str:
    """Make the stack's watcher serve on a free port; return its base URL."""
    port = take_port()
    stack.watch_args = (lambda orig: lambda *extra: orig("--listen", f"127.0.0.1:{port}", *extra))(stack.watch_args)
    return f"http://127.0.0.1:{port}"


def test_prometheus_scrapes_the_applies_counter_and_sees_it_grow(stack: Stack, tmp_path: Path):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("this test needs Prometheus: run `make deps` (apt-get install prometheus)", pytrace=False)
    base = listen(stack)
    register(stack, "web-1", 9001)
    wait_until(lambda: stack.consul.passing("web") == ["web-1"], 10, what="web-1 in Consul")
    stack.start_balancer(live=True)
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=1).status_code == 200, 15, what="the watcher ready")

    text = requests.get(f"{base}/metrics", timeout=2).text
    for name in (
        "disco_consul_requests_total",
        "disco_consul_up",
        "disco_catalog_instances",
        "disco_backend_servers",
        "disco_instances_left_out",
        "disco_applies_total",
        "disco_render_duration_seconds_bucket",
        "disco_validate_duration_seconds_bucket",
        "disco_apply_duration_seconds_bucket",
        "disco_change_to_applied_seconds_bucket",
        "disco_last_apply_success_timestamp_seconds",
        "disco_pending",
        "disco_gate_held",
        "disco_build_info",
    ):
        assert name in text, name
    assert "web-1" not in text  # no instance IDs as labels

    prom_port = take_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
        f"  - job_name: disco\n    static_configs:\n      - targets: ['{base.removeprefix('http://')}']\n"
    )
    stack.spawn(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        "prometheus",
    )

    def applies() -> float | None:
        answer = requests.get(
            f"http://127.0.0.1:{prom_port}/api/v1/query",
            timeout=2,
            params={"query": 'sum(disco_applies_total{result="success"})'},
        ).json()
        result = answer["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    first = wait_until(lambda: [v for v in [applies()] if v is not None], 30, what="Prometheus to scrape the watcher")[
        0
    ]
    up = requests.get(
        f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": "up{job='disco'}"}, timeout=2
    ).json()["data"]["result"]
    assert up and up[0]["value"][1] == "1"

    register(stack, "web-2", 9002)
    wait_until(lambda: (applies() or 0) > first, 20, what="the applies counter to grow in Prometheus")
    live = requests.get(
        f"http://127.0.0.1:{prom_port}/api/v1/query",
        timeout=2,
        params={"query": 'disco_applies_total{method="live",result="success"}'},
    ).json()
    assert float(live["data"]["result"][0]["value"][1]) >= 1
    servers = requests.get(f"{base}/metrics", timeout=2).text
    assert 'disco_backend_servers{backend="web"} 2.0' in servers


def test_readyz_waits_for_the_first_apply_and_stays_ready_while_consul_is_away(stack: Stack):
    base = listen(stack)
    stack.consul.stop()
    bootstrap = stack.spawn(stack.watch_args("--bootstrap", "--once"), "bootstrap")
    assert bootstrap.popen.wait(30) == 0, bootstrap.output()
    stack.haproxy = stack.spawn(
        ["haproxy", "-W", "-S", f"{stack.master_socket},mode,600", "-f", str(stack.output)], "haproxy"
    )
    wait_until(stack.master_socket.exists, 10, what="HAProxy's master socket")
    stack.watch = stack.spawn(stack.watch_args("--master-socket", str(stack.master_socket)), "watch")

    wait_until(lambda: requests.get(f"{base}/healthz", timeout=1).status_code == 200, 15, what="/healthz")
    time.sleep(1)  # several retries against the missing Consul
    answer = requests.get(f"{base}/readyz", timeout=2)
    assert answer.status_code == 503 and answer.json()["ready"] is False
    assert answer.json()["consul_reachable"] is False

    stack.consul.start()
    register(stack, "web-1", 9001)
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=1).status_code == 200, 20, what="ready after an apply")
    # The registration and its check turning passing are two changes: once both are applied, nothing is pending.
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=1).json()["pending"] is False, 10, what="nothing pending")
    body = requests.get(f"{base}/readyz", timeout=2).json()
    assert body["consul_reachable"] is True and body["last_apply"] and body["pending"] is False

    stack.consul.stop()
    wait_until(
        lambda: requests.get(f"{base}/readyz", timeout=1).json()["consul_reachable"] is False,
        15,
        what="readyz to say Consul is unreachable",
    )
    answer = requests.get(f"{base}/readyz", timeout=2)
    assert answer.status_code == 200 and answer.json()["held_services"] == {}
    assert requests.get(f"{base}/healthz", timeout=2).status_code == 200
    assert stack.watch.alive()
