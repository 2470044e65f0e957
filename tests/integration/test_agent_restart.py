"""A client agent restarting under a watcher in per-service mode, behind a TCP proxy (as an L4 load balancer
or Docker's userland proxy stands in front of an agent): while the agent is down the proxy accepts each
connection and closes it with no answer, as an agent past its connection limit does.  The watcher must take
that for the outage it is (retry with backoff, report it), keep running and catch up once the agent is back;
the limit itself still stops it (tests/integration/test_connection_limit.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.consul.aio_client import AsyncConsul
from discovery.consul.resets import Outcome, Probe
from discovery.settings import ConsulSettings
from testkit import DISCO, ConsulCluster, Proc, wait_until
from testkit.proxy import HalfOpenProxy
from testkit.soak import ClientAgent

SERVICES = 3


@pytest.fixture
def agent_behind_proxy(tmp_path: Path) -> Iterator[tuple[ConsulCluster, ClientAgent, HalfOpenProxy]]:
    cluster = ConsulCluster(tmp_path / "consul", size=1)
    cluster.start()
    agent = ClientAgent(tmp_path, cluster)
    proxy = HalfOpenProxy(agent.http)
    try:
        agent.start()
        proxy.start()
        yield cluster, agent, proxy
    finally:
        proxy.stop()
        agent.stop()
        cluster.stop()


def register(cluster: ConsulCluster, node: str, address: str) -> None:
    for i in range(SERVICES):
        cluster.servers[0].put(
            "/v1/catalog/register",
            {
                "Node": node,
                "Address": address,
                "Service": {"Service": f"s{i}", "ID": f"s{i}-{node}", "Address": address, "Port": 9000 + i},
            },
        )


def test_a_client_agent_restarting_behind_a_proxy_is_an_outage_not_the_connection_limit(
    agent_behind_proxy: tuple[ConsulCluster, ClientAgent, HalfOpenProxy], tmp_path: Path
):
    cluster, agent, proxy = agent_behind_proxy
    register(cluster, "n1", "127.0.5.1")
    names = [arg for i in range(SERVICES) for arg in ("--service", f"s{i}")]
    watch = Proc(
        [
            *(*DISCO, "watch", *names, "--output", str(tmp_path / "unused.cfg"), "--dry-run", "--check-cmd", "true"),
            *("--consul-addr", proxy.url, "--watch-mode", "service", "--blocking-wait", "10s"),
        ],
        tmp_path / "watch.log",
    )
    try:
        wait_until(lambda: "server s2-n1 127.0.5.1:9002" in watch.output(), 30, what="the first pass")
        agent.stop()
        register(cluster, "n2", "127.0.5.2")  # changes while the agent is down
        # Down long enough for resets in a row: the proxy accepts and closes while nothing is behind it
        # (logged as closed, or as reset when the request was already in: a race on loopback).
        wait_until(
            lambda: watch.output().count("the connection with no answer") >= 3 * SERVICES or not watch.alive(),
            30,
            what="connections reset while the agent is down",
        )
        agent.start()
        caught_up = [f"server s{i}-n2 127.0.5.2:{9000 + i}" for i in range(SERVICES)]  # each service's own poll
        wait_until(
            lambda: all(line in watch.output() for line in caught_up) or not watch.alive(),
            60,
            what="the watcher caught up with the changes made while the agent was down",
        )
        assert watch.alive(), watch.output()[-3000:]
        assert "an outage, not the connection limit: retrying with backoff" in watch.output()
        assert "ConnectionLimit" not in watch.output()
    finally:
        watch.stop()


def test_the_probe_tells_an_answering_agent_from_a_reset_and_from_no_answer(
    agent_behind_proxy: tuple[ConsulCluster, ClientAgent, HalfOpenProxy],
):
    """The evidence the watcher judges resets by, read from a real agent and proxy."""
    _, agent, proxy = agent_behind_proxy

    def probe(port: int) -> Probe:
        async def ask() -> Probe:
            async with AsyncConsul(ConsulSettings(port=port), connections=1) as reader:
                return await reader.probe()

        return asyncio.run(ask())

    assert probe(proxy.port) == Probe(Outcome.ANSWERED, 200, f"Consul at {proxy.url} answered 200")
    agent.stop()
    assert probe(proxy.port).outcome is Outcome.RESET  # accepted and closed: nothing behind the proxy
    assert probe(agent.http).outcome is Outcome.DOWN  # connection refused
