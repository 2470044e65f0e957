"""`disco watch --discover` on a real Consul, a real HAProxy and real HTTP: services with a route
tag become backends as they are registered and stop being backends as they go, through validated
reloads of the same HAProxy master, without restarting the watcher."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
import requests

from testkit import DISCO, REPO, wait_until

from .apps import Apps, get
from .conftest import Stack


@pytest.fixture
def apps(stack: Stack) -> Iterator[Apps]:
    a = Apps(stack.consul)
    yield a
    a.close()


def discover_args(stack: Stack, *extra: str) -> list[str]:
    return [
        *DISCO,
        "watch",
        "--discover",
        "--output",
        str(stack.output),
        "--consul-addr",
        stack.consul.url,
        "--runtime-socket",
        str(stack.admin_socket),
        "--set",
        f"frontend_port={stack.lb_port}",
        "--set",
        f"stats_port={stack.stats_port}",
        "--set",
        "bind_address=127.0.0.1",
        *extra,
    ]


def backends(stack: Stack) -> set[str]:
    return {line.split()[1] for line in stack.output.read_text().splitlines() if line.startswith("backend ")}


def answer(stack: Stack, path: str) -> tuple[int, str, str]:
    response = get(stack, path)
    return response.status_code, response.headers.get("X-Instance", ""), response.headers.get("X-Path", "")


def test_services_with_route_tags_come_and_go_without_a_restart(stack: Stack, apps: Apps):
    once = stack.spawn(discover_args(stack, "--once"), "watch-once")  # an empty catalog: no backend
    assert once.popen.wait(60) == 0, once.output()
    assert backends(stack) == set()
    stack.haproxy = stack.spawn(
        ["haproxy", "-W", "-S", f"{stack.master_socket},mode,600", "-f", str(stack.output)], "haproxy"
    )
    wait_until(stack.master_socket.exists, 10, what="HAProxy's master socket")
    watch = stack.watch = stack.spawn(
        discover_args(stack, "--master-socket", str(stack.master_socket), "--gate-grace", "3s"), "watch"
    )
    wait_until(lambda: "applied 0 backends, 0 servers" in watch.output(), 20, what="the watcher's first pass")
    assert answer(stack, "/a/x")[0] == 503  # no route, no default backend
    reloads = stack.reloads()

    apps.start("a", "a-1", ("urlprefix-/a strip=/a",))
    assert wait_until(lambda: answer(stack, "/a/users?id=7") == (200, "a-1", "/users?id=7"), 20, what="a routed")
    after_a = stack.reloads()
    assert after_a > reloads  # a new backend is a reload

    apps.start("c", "c-1")  # no route tag
    apps.start("bad.name!", "bad-1", ("urlprefix-/bad",))  # a name HAProxy cannot carry
    apps.start("b", "b-1", ("urlprefix-/b",))
    assert wait_until(lambda: answer(stack, "/b/x") == (200, "b-1", "/b/x"), 20, what="b routed")
    assert answer(stack, "/a/y")[:2] == (200, "a-1")
    assert stack.reloads() > after_a
    assert backends(stack) == {"a", "b"}  # c was listed with b, or before
    text = stack.output.read_text()
    assert "c-1" not in text and "bad.name" not in text
    wait_until(
        lambda: "discover: service skipped: service name 'bad.name!'" in watch.output(),
        10,
        what="the refused name logged",
    )
    assert watch.output().count("service name 'bad.name!'") == 1

    apps.deregister("a-1")  # a's last instance
    # Gated like any service losing its last instance (--when-empty keep): held for --gate-grace,
    # then the backend is dropped, not left empty.
    wait_until(
        lambda: "holding the change of a: 1 -> 0 instances (every instance is gone)" in watch.output(),
        20,
        what="the removal of a held",
    )
    wait_until(lambda: backends(stack) == {"b"}, 20, what="backend a dropped")
    assert wait_until(lambda: answer(stack, "/a/x")[0] == 503, 10, what="/a no longer routed")
    assert answer(stack, "/b/x")[:2] == (200, "b-1")
    assert "discover: a no longer in the catalog: no longer followed" in watch.output()
    assert "released the held change of a after" in watch.output()

    assert watch.alive() and stack.haproxy.alive()  # never restarted
    assert watch.output().count("watching 0 services and every service with a route tag") == 1
    assert stack.reloads() >= after_a + 2


def test_plan_and_status_take_discover_and_watch_needs_a_service_or_discover(stack: Stack, apps: Apps):
    def run(command: str, *extra: str) -> subprocess.CompletedProcess[str]:
        argv = discover_args(stack, *extra)
        argv[argv.index("watch")] = command
        return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60, cwd=REPO)

    apps.start("a", "a-1", ("urlprefix-/a",))
    apps.start("c", "c-1")
    wait_until(lambda: stack.consul.passing("a"), 10, what="a in Consul")
    result = run("plan", "--json")
    assert result.returncode == 3, result.stdout + result.stderr  # changes: nothing written yet
    report = json.loads(result.stdout)
    assert report["summary"] == "1 backends, 1 servers" and "+backend a" in report["diff"]
    assert "backend c" not in report["diff"] and "default_backend" not in report["diff"]
    once = stack.spawn(discover_args(stack, "--once"), "watch-once")
    assert once.popen.wait(60) == 0, once.output()
    assert run("plan").returncode == 0  # nothing to do now
    result = run("status", "--json")  # the watcher's flags: status renders what Consul says with its values
    assert result.returncode == 0, result.stdout + result.stderr
    assert [b["backend"] for b in json.loads(result.stdout)["backends"]] == ["a"]

    refused = run("watch", "--watch-mode", "service")
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        "disco: error: --discover follows the catalog with two blocking queries: it cannot go with --watch-mode service"
    ]
    neither = subprocess.run(
        [*DISCO, "watch", "--output", str(stack.output)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert neither.returncode == 2 and neither.stderr.strip().splitlines() == [
        "disco: error: missing --service or --discover (or `service` or `discover = true` in the config file)"
    ]


def test_a_service_named_like_a_section_of_the_template_is_refused_and_the_others_go_on(stack: Stack, apps: Apps):
    """`stats` with a route tag would be `backend stats` beside the template's `listen stats`: HAProxy
    rejects that config, and every later change (a new instance of web) would never reach HAProxy."""
    apps.start("web", "web-1", ("urlprefix-/web",))
    wait_until(lambda: stack.consul.passing("web"), 10, what="web in Consul")
    once = stack.spawn(discover_args(stack, "--once"), "watch-once")
    assert once.popen.wait(60) == 0, once.output()
    stack.haproxy = stack.spawn(
        ["haproxy", "-W", "-S", f"{stack.master_socket},mode,600", "-f", str(stack.output)], "haproxy"
    )
    wait_until(stack.master_socket.exists, 10, what="HAProxy's master socket")
    watch = stack.watch = stack.spawn(discover_args(stack, "--master-socket", str(stack.master_socket)), "watch")
    assert wait_until(lambda: answer(stack, "/web/x")[:2] == (200, "web-1"), 20, what="web routed")

    apps.start("stats", "stats-1", ("urlprefix-/stats",))
    reason = "service 'stats' refused: its backend would take the name of the template's own section `listen stats`"
    wait_until(lambda: reason in watch.output(), 20, what="stats refused")
    apps.start("web", "web-2", ("urlprefix-/web",))
    seen: set[str] = set()

    def both() -> bool:
        seen.update(answer(stack, "/web/x")[1] for _ in range(4))
        return {"web-1", "web-2"} <= seen

    assert wait_until(both, 20, what="web-2 through HAProxy")
    assert backends(stack) == {"web"}
    assert answer(stack, "/stats")[0] == 503  # no route to the stats page through the load balancer
    page = requests.get(f"http://127.0.0.1:{stack.stats_port}/;csv", timeout=5)
    assert page.status_code == 200 and "web-2" in page.text  # the template's own stats page, unharmed
    assert watch.output().count("service 'stats' refused") == 1  # one line, not one per pass
    assert "HAProxy rejected" not in watch.output()
    assert watch.alive()
