"""Service settings from disco-* meta and the backup tag, on real processes and real HTTP."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from testkit import wait_until

from .apps import Apps, reached, start_routed
from .conftest import Stack


@pytest.fixture
def apps(stack: Stack) -> Iterator[Apps]:
    a = Apps(stack.consul)
    yield a
    a.close()


def weight_in_config(stack: Stack, server: str) -> str | None:
    match = re.search(rf"^\s+server {server} \S+ .*?(?:weight (\d+)|$)", stack.output.read_text(), re.MULTILINE)
    return match.group(1) if match else None


def test_weights_share_traffic_and_a_weight_change_needs_no_reload(stack: Stack, apps: Apps):
    apps.start("web", "web-1", meta={"disco-weight": "3"})
    apps.start("web", "web-2", meta={"disco-weight": "1"})
    start_routed(stack, ["web"], expect=2)
    seen = reached(stack, 400)
    assert 270 <= seen["web-1"] <= 330 and seen["web-1"] + seen["web-2"] == 400, seen  # about 3:1
    reloads = stack.reloads()
    apps.register("web", "web-2", meta={"disco-weight": "3"})
    wait_until(lambda: weight_in_config(stack, "web-2") == "3", 10, what="the new weight in the file")
    seen = reached(stack, 400)
    assert 170 <= seen["web-1"] <= 230, seen  # about 1:1 now
    assert stack.reloads() == reloads
    assert stack.watch is not None and "applied live" in stack.watch.output()


def test_backup_instance_is_served_only_when_the_others_are_gone(stack: Stack, apps: Apps):
    apps.start("web", "web-1")
    apps.start("web", "web-2")
    apps.start("web", "web-b", ("backup",))
    start_routed(stack, ["web"], expect=3)
    assert set(reached(stack, 30)) == {"web-1", "web-2"}
    apps.deregister("web-1")
    apps.deregister("web-2")
    wait_until(lambda: set(reached(stack, 6)) == {"web-b"}, 15, what="the backup serving")
    apps.register("web", "web-1")
    wait_until(lambda: set(reached(stack, 6)) == {"web-1"}, 15, what="web-1 back, the backup idle")


def test_disagreeing_instances_majority_wins_and_the_disagreement_is_logged_once(stack: Stack, apps: Apps):
    apps.start("web", "web-1", meta={"disco-balance": "leastconn", "disco-maxconn": "30"})
    apps.start("web", "web-2", meta={"disco-balance": "leastconn", "disco-maxconn": "30"})
    apps.start("web", "web-3", meta={"disco-balance": "first", "disco-maxconn": "30"})  # a rolling deploy
    start_routed(stack, ["web"], expect=3)
    text = stack.output.read_text()
    assert "balance leastconn" in text and text.count("maxconn 30") == 3
    line = "web: instances disagree on disco-balance: leastconn (web-1, web-2); first (web-3); using leastconn"
    assert stack.watch is not None
    wait_until(lambda: line in stack.watch.output(), 5, what="the disagreement logged")
    apps.start("web", "web-4", meta={"disco-balance": "leastconn", "disco-maxconn": "30"})
    wait_until(lambda: "web-4" in stack.servers_in_config(), 10, what="web-4 in the config")
    time.sleep(0.3)
    assert stack.watch.output().count("instances disagree on disco-balance") == 2  # changed sides: logged anew
    assert "leastconn (web-1, web-2, web-4)" in stack.watch.output()


def test_check_none_and_tcp_settings_reach_haproxy(stack: Stack, apps: Apps):
    apps.start("web", "web-1", meta={"disco-check": "none"})
    apps.start("api", "api-1", ("urlprefix-/api",), meta={"disco-check": "tcp"})
    start_routed(stack, ["web", "api"], expect=2)
    text = stack.output.read_text()
    assert re.search(r"server web-1 127\.0\.0\.1:\d+\n", text)
    assert re.search(r"server api-1 127\.0\.0\.1:\d+ check inter", text)
    assert "option httpchk" not in text
    assert set(reached(stack, 4, "/api")) == {"api-1"}


def test_reloads_caused_by_100_weight_changes_and_100_instance_changes(stack: Stack, apps: Apps):
    """The figure docs/routing.md reports: weight and instance changes go through the runtime API."""
    apps.start("web", "web-1", meta={"disco-weight": "1"})
    apps.start("web", "web-2")
    start_routed(stack, ["web"], expect=2)
    reloads = stack.reloads()
    started = time.monotonic()
    for i in range(100):
        weight = str(i % 50 + 2)
        apps.register("web", "web-1", meta={"disco-weight": weight})
        wait_until(lambda w=weight: weight_in_config(stack, "web-1") == w, 10, interval=0.01, what=f"weight {weight}")
    apps.start("web", "extra", register=False)
    for _ in range(50):  # 50 additions and 50 removals
        apps.register("web", "extra")
        wait_until(lambda: "extra" in stack.servers_in_config(), 10, interval=0.01, what="extra added")
        apps.deregister("extra")
        wait_until(lambda: "extra" not in stack.servers_in_config(), 10, interval=0.01, what="extra removed")
    elapsed = time.monotonic() - started
    assert set(reached(stack, 104)) == {"web-1", "web-2"}  # weights 51:1
    caused = stack.reloads() - reloads
    print(f"\n200 changes (100 weight, 100 instance) in {elapsed:.1f}s caused {caused} reloads")
    assert caused == 0
