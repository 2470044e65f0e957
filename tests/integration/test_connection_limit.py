"""The per-service watch against an agent with a low connection limit per client
(``limits.http_max_conns_per_client = 40``: 24 long polls after headroom): the watcher reads the
limit from /v1/agent/self, never opens more connections than it allows, falls back to the
catalog-wide watch when the services would not fit, refuses an explicit ``--watch-mode service``
that cannot fit, and stops with a clear error when the agent resets its connections anyway."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import pytest

from testkit import DISCO, ConsulAgent, Proc, wait_until

LIMIT = 40  # polls_allowed(40) == 24


@pytest.fixture
def limited(tmp_path: Path):
    agent = ConsulAgent(tmp_path, extra={"limits": {"http_max_conns_per_client": LIMIT}})
    agent.start()
    yield agent
    agent.stop()


def register(consul: ConsulAgent, services: int, node: str = "n1", address: str = "127.0.5.1") -> None:
    for i in range(services):
        consul.put(
            "/v1/catalog/register",
            {
                "Node": node,
                "Address": address,
                "Service": {"Service": f"s{i}", "ID": f"s{i}-{node}", "Address": address, "Port": 9000 + i},
                "Check": {"CheckID": f"c{i}-{node}", "ServiceID": f"s{i}-{node}", "Status": "passing"},
            },
        )


def watch(consul: ConsulAgent, tmp_path: Path, services: int, *extra: str) -> Proc:
    names = [arg for i in range(services) for arg in ("--service", f"s{i}")]
    argv = [*DISCO, "watch", *names, "--output", str(tmp_path / "unused.cfg"), "--dry-run", "--check-cmd", "true"]
    return Proc([*argv, "--consul-addr", consul.url, *extra], tmp_path / f"watch-{services}.log")


def connections_to(pid: int, port: int) -> int:
    """Established TCP connections of process ``pid`` to 127.0.0.1:``port`` (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def test_services_that_fit_are_watched_one_long_poll_each_within_the_limit(limited: ConsulAgent, tmp_path: Path):
    register(limited, 20)
    proc = watch(limited, tmp_path, 20)
    try:
        wait_until(lambda: "server s19-n1 127.0.5.1:9019" in proc.output(), 30, what="the first pass")
        assert "watch mode service: " in proc.output()  # default reads: no ?cached (stale reads)
        assert (
            "21 long polls (20 services, 1 other watch) fit under the agent's 40 connections per client"
            in proc.output()
        )
        # Every service holds its long poll; never more connections than the limit allows after headroom.
        wait_until(lambda: connections_to(proc.popen.pid, limited.http_port) >= 20, 10, what="20 long polls open")
        for _ in range(20):
            assert connections_to(proc.popen.pid, limited.http_port) <= 24
        register(limited, 1, node="n2", address="127.0.5.2")  # a change is still seen through the long poll
        wait_until(lambda: "server s0-n2 127.0.5.2:9000" in proc.output(), 15, what="the new instance rendered")
        assert "reset" not in proc.output() and proc.alive()
    finally:
        proc.stop()


def test_services_that_would_not_fit_are_followed_through_the_catalog(limited: ConsulAgent, tmp_path: Path):
    register(limited, 30)
    proc = watch(limited, tmp_path, 30)
    try:
        wait_until(lambda: "server s29-n1 127.0.5.1:9029" in proc.output(), 30, what="the first pass")
        assert "watch mode catalog: 31 long polls (30 services, 1 other watch) would not fit under the agent's 40 " in (
            proc.output()
        )
        assert connections_to(proc.popen.pid, limited.http_port) <= 24
    finally:
        proc.stop()


def test_an_explicit_service_mode_that_cannot_fit_is_refused_at_start(limited: ConsulAgent, tmp_path: Path):
    register(limited, 30)
    proc = watch(limited, tmp_path, 30, "--watch-mode", "service")
    try:
        assert proc.popen.wait(30) == 2
    finally:
        proc.stop()
    assert (
        "disco: error: --watch-mode service needs 31 long polls (30 services, 1 other watch), but the agent allows 40"
        in (proc.output())
    )
    assert "server " not in proc.output()


def test_connections_reset_past_the_limit_stop_the_watcher_instead_of_retrying_forever(
    limited: ConsulAgent, tmp_path: Path
):
    """Another client on the address holds connections: the agent resets ours past its limit."""
    register(limited, 20)
    hogs = []
    try:
        for _ in range(LIMIT - 10):
            hogs.append(socket.create_connection(("127.0.0.1", limited.http_port), timeout=5))
        proc = watch(limited, tmp_path, 20)
        try:
            assert proc.popen.wait(60) == 1
        finally:
            proc.stop()
        assert "times in a row: the agent refuses more connections from this address" in proc.output()
        assert "http_max_conns_per_client" in proc.output()
        assert "long polls of ours held open" in proc.output()  # the evidence: the agent holds ours, refuses new
    finally:
        for hog in hogs:
            hog.close()
