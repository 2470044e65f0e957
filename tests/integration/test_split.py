"""Traffic split by tag (disco-split) on real Consul, real HAProxy and real HTTP: shares hold, change
live (no reload), and sticky clients keep their server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from testkit import wait_until

from .apps import Apps, get, reached, start_routed
from .conftest import Stack

STABLE = ("web-1", "web-2", "web-3")


@pytest.fixture
def apps(stack: Stack) -> Iterator[Apps]:
    a = Apps(stack.consul)
    yield a
    a.close()


def register_all(apps: Apps, percent: int) -> None:
    meta = {"disco-split": f"v2={percent}", "disco-sticky": "SRV"}
    for name in STABLE:
        apps.register("web", name, meta=meta)
    apps.register("web", "canary", ("v2",), meta=meta)


def canary_weight(stack: Stack) -> str:
    line = next(ln for ln in stack.output.read_text().splitlines() if ln.strip().startswith("server canary "))
    words = line.split()
    return words[words.index("weight") + 1] if "weight" in words else ""


def test_split_over_three_stable_and_one_canary_changes_live_and_keeps_sticky_clients(stack: Stack, apps: Apps):
    for name in (*STABLE, "canary"):
        apps.start("web", name, register=False)
    register_all(apps, 10)
    start_routed(stack, ["web"], expect=4)
    assert stack.watch is not None
    wait_until(lambda: canary_weight(stack) == "85", 10, what="the canary's weight for 10%")
    reloads = stack.reloads()

    started = time.monotonic()
    seen = reached(stack, 2000)
    print(f"\nsplit v2=10: {seen['canary']} of 2000 on the canary ({time.monotonic() - started:.1f}s)")
    assert sum(seen.values()) == 2000 and set(seen) == {*STABLE, "canary"}, seen
    assert 140 <= seen["canary"] <= 260, seen  # 10 % +- 3 %

    # A client that holds the canary's cookie.
    sticky = next(r for r in (get(stack, "/") for _ in range(200)) if r.headers.get("X-Instance") == "canary")
    cookie = sticky.cookies["SRV"]

    register_all(apps, 50)
    wait_until(lambda: canary_weight(stack) == "256", 10, what="the canary's weight for 50%")
    seen = reached(stack, 2000)
    print(f"split v2=50: {seen['canary']} of 2000 on the canary")
    assert 900 <= seen["canary"] <= 1100, seen

    register_all(apps, 0)  # no new client for the canary; its sticky clients stay
    wait_until(lambda: canary_weight(stack) == "0", 10, what="the canary's weight for 0%")
    assert "canary" not in reached(stack, 200)
    assert {get(stack, "/", cookies={"SRV": cookie}).headers["X-Instance"] for _ in range(20)} == {"canary"}

    caused = stack.reloads() - reloads
    print(f"reloads caused by the split changes: {caused}")
    assert caused == 0
    assert "applied live" in stack.watch.output()


def test_a_split_tag_no_instance_carries_is_logged_once_and_its_share_goes_to_the_rest(stack: Stack, apps: Apps):
    meta = {"disco-split": "v2=10,v3=30"}
    for name in ("web-1", "web-2"):
        apps.start("web", name, meta=meta)
    apps.start("web", "canary", ("v2",), meta=meta)
    start_routed(stack, ["web"], expect=3)
    assert stack.watch is not None
    line = "web: disco-split v2=10,v3=30: no instance carries tag 'v3'; its 30% goes to the rest"
    wait_until(lambda: line in stack.watch.output(), 10, what="the missing tag logged")
    seen = reached(stack, 600)
    assert 30 <= seen["canary"] <= 90, seen  # 10 % of 600, not 10/70
    apps.start("web", "web-3", meta=meta)  # instances come and go: same note, not logged again
    wait_until(lambda: len(stack.servers_in_config()) == 4, 10, what="web-3 in the config")
    time.sleep(0.5)
    assert stack.watch.output().count("no instance carries tag 'v3'") == 1
