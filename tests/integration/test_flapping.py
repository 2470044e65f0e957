"""An instance flapping at 10 Hz for 30 s: a bounded number of reloads, the others unaffected."""

from __future__ import annotations

import re
import threading
import time

import requests

from testkit import instances_reached, wait_until

from .conftest import Stack


def test_flapping_instance_costs_bounded_reloads_and_no_failed_request(stack: Stack):
    for name in ("web-1", "web-2"):
        stack.add_webapp(name)
    wait_until(lambda: len(stack.consul.passing("web")) == 2, 20, what="2 instances passing")
    stack.start_balancer()  # reloads only: the expensive path the budget protects
    wait_until(lambda: set(instances_reached(stack.lb, 6)) == {"web-1", "web-2"}, 20, what="both reached")
    # The flapper: a TTL check switched between passing and critical every 100 ms.
    stack.consul.put(
        "/v1/agent/service/register",
        {
            "Name": "web",
            "ID": "flapper",
            "Address": "127.0.0.1",
            "Port": 9,
            "Check": {"CheckID": "service:flapper", "TTL": "1h"},
        },
    )
    reloads_before = stack.reloads()
    failures: list[str] = []
    ok = 0
    stop = threading.Event()

    def client() -> None:  # bounded by the flapping below
        nonlocal ok
        while not stop.is_set():
            try:
                r = requests.get(stack.lb, timeout=3, headers={"Connection": "close"})
                if r.headers.get("X-Instance") in ("web-1", "web-2"):
                    ok += 1
                else:
                    failures.append(f"status {r.status_code}")
            except requests.RequestException as exc:
                failures.append(type(exc).__name__)
            stop.wait(0.01)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    start = time.monotonic()
    flips = 0
    while time.monotonic() - start < 30:
        stack.consul.put(f"/v1/agent/check/{'pass' if flips % 2 == 0 else 'fail'}/service:flapper")
        flips += 1
        time.sleep(max(0.0, start + flips * 0.1 - time.monotonic()))  # 10 flips a second, whatever a PUT costs
    elapsed = time.monotonic() - start
    stop.set()
    thread.join(10)
    reloads = stack.reloads() - reloads_before
    # The budget: 5 at once, then one per 250 ms.
    assert flips >= 200
    assert reloads <= 5 + elapsed / 0.25 + 2, reloads
    assert failures == [] and ok > 100  # traffic flowed all along, and none of it failed
    assert stack.watch is not None
    applies = len(re.findall(r"applied 1 backends", stack.watch.output()))
    assert applies < flips
