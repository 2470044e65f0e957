"""Failover datacenters on two real Consul datacenters (a server each, WAN-joined on loopback), real
HAProxy and real HTTP: local down -> dc2 answers with no failed request of a steady client, no
reload; local back -> traffic returns; dc2's server stopped (the WAN link cut) -> local traffic
unaffected, dc2's last instances kept, reported by status and the metrics; an unknown datacenter
is an error at start (exit 2)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from testkit import DISCO, ConsulAgent, take_port, wait_until
from webapp.app import make_server

from .apps import Apps, get, reached, start_routed
from .conftest import Stack


@pytest.fixture
def dcs(tmp_path: Path) -> Iterator[tuple[ConsulAgent, ConsulAgent]]:
    (tmp_path / "dc1").mkdir()
    (tmp_path / "dc2").mkdir()
    dc1 = ConsulAgent(tmp_path / "dc1", extra={"datacenter": "dc1", "node_name": "n1"})
    dc1.start()
    wan = json.loads(dc1.config.read_text())["ports"]["serf_wan"]
    dc2 = ConsulAgent(
        tmp_path / "dc2",
        extra={
            "datacenter": "dc2",
            "node_name": "n2",
            "retry_join_wan": [f"127.0.0.1:{wan}"],
            "retry_interval_wan": "1s",
        },
    )
    try:
        dc2.start()
        wait_until(
            lambda: requests.get(f"{dc1.url}/v1/catalog/datacenters", timeout=2).json() == ["dc1", "dc2"],
            30,
            what="dc2 WAN-joined to dc1",
        )
        yield dc1, dc2
    finally:
        dc2.stop()
        dc1.stop()


@pytest.fixture
def stack(dcs: tuple[ConsulAgent, ConsulAgent], tmp_path: Path) -> Iterator[Stack]:
    (tmp_path / "stack").mkdir()
    s = Stack(dcs[0], tmp_path / "stack")
    yield s
    s.close()


class SteadyClient:
    """``clients`` threads making new connections (Connection: close) one after the other, bounded
    in count and time; every answer kept with its time (the instance, or the error)."""

    def __init__(self, stack: Stack, clients: int = 4, limit: int = 20_000, seconds: float = 120.0) -> None:
        self.stack, self.limit, self.seconds = stack, limit, seconds
        self.results: list[tuple[float, str]] = []
        self.slowest = (0.0, 0.0)  # (seconds, when it ended)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)

    def run(self) -> None:
        end = time.monotonic() + self.seconds
        while not self.stop.is_set() and len(self.results) < self.limit and time.monotonic() < end:
            started = time.monotonic()
            try:
                response = get(self.stack, "/", timeout=10)
                what = response.headers.get("X-Instance") or f"status {response.status_code}"
            except requests.RequestException as exc:
                what = f"error {type(exc).__name__}"
            ended = time.monotonic()
            self.slowest = max(self.slowest, (ended - started, ended))
            self.results.append((ended, what))

    def last(self, n: int = 5) -> set[str]:
        return {w for _, w in self.results[-n:]}

    def failed(self, since: float = 0.0) -> list[str]:
        return [w for t, w in self.results if t >= since and w.startswith(("error", "status"))]

    def first(self, instance: str, since: float) -> float:
        return min(t for t, w in self.results if t >= since and w == instance)


def local_w1_dies(stack: Stack, local: Apps) -> tuple[SteadyClient, float, float]:
    """A steady client going, then the local instance w1 stops (crashes) and leaves Consul; once dc2
    answers: the client, when w1 died and how long until dc2's first answer (s)."""
    client = SteadyClient(stack)
    client.start()
    wait_until(lambda: len(client.results) > 50, 10, what="the steady client going")
    down = time.monotonic()
    local.servers["w1"].shutdown()
    local.servers["w1"].server_close()
    local.deregister("w1")
    wait_until(lambda: client.last() == {"r1"}, 30, what="dc2 answering")
    return client, down, client.first("r1", down) - down


def local_w1_back(client: SteadyClient, local: Apps, port: int, tags: tuple[str, ...] = ()) -> float:
    """w1 back on the same port and registered again; seconds until the client reaches it."""
    server = make_server("127.0.0.1", port, "w1")
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    local.servers["w1"] = server
    back = time.monotonic()
    local.register("web", "w1", tags)
    wait_until(lambda: client.last(20) == {"w1"}, 30, what="traffic back on the local instance")
    return client.first("w1", back) - back


def test_local_down_dc2_answers_local_back_traffic_returns_no_reload(
    stack: Stack, dcs: tuple[ConsulAgent, ConsulAgent]
):
    local, remote = Apps(dcs[0]), Apps(dcs[1])
    try:
        port = local.start("web", "w1")
        remote.start("web", "r1")
        stack.watch_args = (lambda orig: lambda *extra: orig("--failover-dc", "dc2", *extra))(stack.watch_args)
        start_routed(stack, ["web"], expect=2)
        assert "dc2:r1" in stack.servers_in_config()
        assert " backup" in next(ln for ln in stack.output.read_text().splitlines() if "server dc2:r1 " in ln)
        assert set(reached(stack, 20)) == {"w1"}
        reloads = stack.reloads()

        client, down, failover = local_w1_dies(stack, local)
        returned = local_w1_back(client, local, port)
        client.join()
        failed = client.failed()
        during = sum(1 for t, _ in client.results if down <= t < down + failover)
        print(
            f"\nfailover to dc2 {failover * 1000:.0f} ms after the local instance died ({during} requests answered "
            f"in that time, {len(failed)} failed; the slowest request took {client.slowest[0] * 1000:.0f} ms: "
            f"HAProxy's retries until its check marked the server down); back {returned * 1000:.0f} ms after it "
            "returned; "
            f"{len(client.results)} requests by {len(client.threads)} clients in all; reloads: "
            f"{stack.reloads() - reloads}"
        )
        assert failed == [], failed[:5]
        assert stack.reloads() == reloads
    finally:
        local.close()
        remote.close()


def status(stack: Stack, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [*DISCO, "status", "--service", "web", "--output", str(stack.output), "--consul-addr", stack.consul.url]
    argv += ["--runtime-socket", str(stack.admin_socket), *stack.watch_values(), *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_the_wan_link_cut_keeps_local_traffic_and_dc2s_last_instances_and_is_reported(
    stack: Stack, dcs: tuple[ConsulAgent, ConsulAgent]
):
    local, remote = Apps(dcs[0]), Apps(dcs[1])
    metrics = take_port()
    try:
        local.start("web", "w1")
        remote.start("web", "r1")
        stack.watch_args = (
            lambda orig: lambda *extra: orig("--failover-dc", "dc2", "--listen", f"127.0.0.1:{metrics}", *extra)
        )(stack.watch_args)
        start_routed(stack, ["web"], expect=2)
        result = status(stack, "--failover-dc", "dc2")
        assert result.returncode == 0, result.stdout + result.stderr
        argv = stack.watch_args()
        argv[argv.index("watch")] = "plan"
        at = argv.index("--listen")
        plan = subprocess.run(argv[:at] + argv[at + 2 :], capture_output=True, text=True, timeout=60, check=False)
        assert plan.returncode == 0, plan.stdout + plan.stderr  # the backup from dc2 is what watch runs

        dcs[1].stop()  # dc2's only server: the WAN link to dc2 is gone
        assert stack.watch is not None
        wait_until(lambda: "failover datacenter dc2 does not answer" in stack.watch.output(), 30, what="reported")
        assert set(reached(stack, 20)) == {"w1"}
        assert {"w1", "dc2:r1"} == stack.servers_in_config()  # the last known kept
        text = requests.get(f"http://127.0.0.1:{metrics}/metrics", timeout=2).text
        assert 'disco_failover_dc_up{dc="dc2"} 0.0' in text and 'disco_failover_instances{dc="dc2"} 1.0' in text
        result = status(stack, "--failover-dc", "dc2")
        assert "failover datacenter dc2 does not answer for web" in result.stdout, result.stdout
        assert result.returncode == 0, result.stdout  # kept, not pending

        dcs[1].start()  # back, empty (a dev agent forgets its registrations): the empty answer is held
        wait_until(lambda: "failover datacenter dc2 answers again" in stack.watch.output(), 60, what="dc2 back")
        wait_until(lambda: "holding the change of web in dc2: 1 -> 0" in stack.watch.output(), 20, what="held")
        assert {"w1", "dc2:r1"} == stack.servers_in_config()
        text = requests.get(f"http://127.0.0.1:{metrics}/metrics", timeout=2).text
        assert 'disco_failover_dc_up{dc="dc2"} 1.0' in text
    finally:
        local.close()
        remote.close()


def test_an_unknown_datacenter_is_one_error_at_start(stack: Stack):
    argv = [*DISCO, "watch", "--service", "web", "--output", str(stack.output), "--consul-addr", stack.consul.url]
    result = subprocess.run([*argv, "--failover-dc", "dc9"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "disco: error: --failover-dc dc9: Consul knows no such datacenter (it knows dc1, dc2)"
    )
    result = subprocess.run([*argv, "--failover-dc", "dc2\n"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "invalid --failover-dc" in result.stderr


def test_a_discovered_service_fails_over_too_and_stays_while_dc2_serves_it(
    stack: Stack, dcs: tuple[ConsulAgent, ConsulAgent]
):
    """No --service: web is found by --discover (its route tag); its dc2 instances are followed from
    then on.  Its last local instance deregistered takes web out of the local catalog: it stays
    followed for dc2's instance (after --gate-grace, its backend holds only that backup), with no
    failed request and no reload; back in the catalog, traffic returns."""
    local, remote = Apps(dcs[0]), Apps(dcs[1])
    try:
        port = local.start("web", "w1", ("urlprefix-/",))
        remote.start("web", "r1", ("urlprefix-/",))
        args = [*DISCO, "watch", "--discover", "--failover-dc", "dc2", "--output", str(stack.output)]
        args += ["--consul-addr", stack.consul.url, *stack.watch_values(), "--gate-grace", "3s"]
        args += ["--runtime-socket", str(stack.admin_socket), "--drain-grace", "1s"]
        stack.watch_args = lambda *extra: [*args, *extra]  # type: ignore[method-assign]
        stack.start_balancer()
        assert stack.watch is not None
        watch = stack.watch
        wait_until(lambda: "applied" in watch.output(), 20, what="the watcher's first pass")
        wait_until(lambda: stack.servers_in_config() == {"w1", "dc2:r1"}, 30, what="w1 and dc2's backup")
        assert set(reached(stack, 20)) == {"w1"}
        reloads = stack.reloads()

        client, _, failover = local_w1_dies(stack, local)  # web's last local instance: web leaves the catalog
        wait_until(lambda: "followed for its failover instances" in watch.output(), 20, what="web kept")
        wait_until(lambda: stack.servers_in_config() == {"dc2:r1"}, 30, what="the gate letting w1 go")
        kept = time.monotonic()
        wait_until(lambda: any(t > kept + 2 for t, _ in client.results), 30, what="requests after the gate")
        assert client.last(20) == {"r1"}

        returned = local_w1_back(client, local, port, ("urlprefix-/",))
        client.join()
        failed = client.failed()
        print(
            f"\n--discover: failover to dc2 {failover * 1000:.0f} ms after the local instance died, "
            f"{len(failed)} failed of {len(client.results)} requests by {len(client.threads)} clients; slowest "
            f"{client.slowest[0] * 1000:.0f} ms; back {returned * 1000:.0f} ms after it returned; reloads: "
            f"{stack.reloads() - reloads}"
        )
        assert failed == [], failed[:5]
        assert stack.reloads() == reloads
        assert watch.alive()
    finally:
        local.close()
        remote.close()


def once(stack: Stack, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [*DISCO, "watch", "--once", "--output", str(stack.output), "--consul-addr", stack.consul.url]
    argv += [*stack.watch_values(), "--failover-dc", "dc2", *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)


def server_line(stack: Stack, name: str) -> str:
    return next((ln for ln in stack.output.read_text().splitlines() if f" server {name} " in ln), "")


def test_once_includes_dc2s_backups_and_the_overrides_and_goes_on_when_dc2_is_cut(
    stack: Stack, dcs: tuple[ConsulAgent, ConsulAgent]
):
    local, remote = Apps(dcs[0]), Apps(dcs[1])
    try:
        local.start("web", "w1", ("urlprefix-/",))
        local.start("web", "w2", ("urlprefix-/",))
        remote.start("web", "r1", ("urlprefix-/",))
        remote.start("api", "a1", ("urlprefix-/api",))
        local.start("api", "la1", ("urlprefix-/api",))
        dcs[0].put("/v1/kv/disco/overrides/web", {"weight": {"w2": 7}})
        for found in (("--service", "web"), ("--discover",)):  # named, and found by its route tag
            stack.output.unlink(missing_ok=True)
            result = once(stack, *found)
            assert result.returncode == 0, result.stderr
            assert " backup" in server_line(stack, "dc2:r1"), stack.output.read_text()
            assert " weight 7" in server_line(stack, "w2"), stack.output.read_text()
            assert "--once: no answer" not in result.stderr
        assert " backup" in server_line(stack, "dc2:a1")  # --discover followed api in dc2 too

        dcs[1].stop()  # the WAN link to dc2 cut: --once says so in one line and writes the local servers
        started = time.monotonic()
        result = once(stack, "--service", "web")
        took = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        assert stack.servers_in_config() == {"w1", "w2"}
        assert "failover datacenter dc2 does not answer for web" in result.stderr
        assert took < 30, took
        print(f"\n--once with dc2 cut: {took:.1f}s")
    finally:
        local.close()
        remote.close()
