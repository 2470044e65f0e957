"""Consul with ACLs (default deny): a least-privilege token works; a refused one is reported once,
clearly, and not retried as an outage; a fixed token file is picked up without a restart."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from testkit import DISCO, ConsulAgent, Proc, take_port, wait_until

MASTER = "0b7f5ac4-6ad5-4b43-8b53-5b3b1d5c1a77"
READ_RULES = 'service_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }'


@pytest.fixture
def acl_consul(tmp_path):
    agent = ConsulAgent(
        tmp_path,
        extra={
            "primary_datacenter": "dc1",
            "acl": {"enabled": True, "default_policy": "deny", "tokens": {"master": MASTER, "agent": MASTER}},
        },
    )
    agent.start()
    yield agent
    agent.stop()


def watch_args(consul: ConsulAgent, output, *extra: str) -> list[str]:
    return [
        *DISCO,
        "watch",
        "--service",
        "web",
        "--output",
        str(output),
        "--consul-addr",
        consul.url,
        "--set",
        f"frontend_port={take_port()}",
        "--set",
        f"stats_port={take_port()}",
        *extra,
    ]


def test_least_privilege_token_reads_the_catalog(acl_consul: ConsulAgent, tmp_path):
    policy = acl_consul.put("/v1/acl/policy", {"Name": "disco-watch", "Rules": READ_RULES})
    token = acl_consul.put("/v1/acl/token", {"Policies": [{"ID": policy["ID"]}]})["SecretID"]
    acl_consul.put("/v1/agent/service/register", {"Name": "web", "ID": "web-1", "Address": "127.0.0.1", "Port": 8080})
    env = {**os.environ, "CONSUL_HTTP_TOKEN": token}
    result = subprocess.run(
        watch_args(acl_consul, tmp_path / "h.cfg", "--once", "--dry-run"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "server web-1 127.0.0.1:8080" in result.stdout


def refused_requests(consul: ConsulAgent) -> int:
    """How many of the watcher's queries Consul refused for an unknown token, from Consul's own log."""
    return sum(
        1
        for line in (consul.workdir / "consul.log").read_text(errors="replace").splitlines()
        if "/v1/health/service/web" in line and "ACL not found" in line
    )


def refusals(watch: Proc) -> int:
    """Lines reporting the refused token for the service's watch (the overrides watch reports its own)."""
    return sum(1 for line in watch.output().splitlines() if "health.service(web" in line and "refused the ACL" in line)


def test_refused_token_is_reported_once_and_a_fixed_token_file_is_picked_up(acl_consul: ConsulAgent, tmp_path):
    acl_consul.put("/v1/agent/service/register", {"Name": "web", "ID": "web-1", "Address": "127.0.0.1", "Port": 8080})
    token_file = tmp_path / "token"
    token_file.write_text("00000000-0000-0000-0000-000000000000\n")  # a token Consul does not know
    output = tmp_path / "haproxy.cfg"
    watch = Proc(
        # The per-service watch (an unknown token cannot read the agent's limit, so auto would follow the catalog).
        watch_args(acl_consul, output, "--watch-mode", "service"),
        tmp_path / "watch.log",
        env={"CONSUL_HTTP_TOKEN_FILE": str(token_file), "CONSUL_HTTP_TOKEN": ""},
    )
    try:
        wait_until(lambda: "refused the ACL token (403)" in watch.output(), 15, what="the 403 reported")
        first = time.monotonic()
        wait_until(lambda: refused_requests(acl_consul) >= 1, 5, what="Consul to log the refusal")
        # Two more refused queries: the watcher did retry, twice, at the 403 pace (10 s), not an
        # outage's (0.25 s doubling to 5 s, which would send these within about 2 s).
        wait_until(lambda: refused_requests(acl_consul) >= 3, 35, interval=0.2, what="two retries refused")
        assert time.monotonic() - first >= 15, "retried at an outage's pace"
        assert watch.alive()
        assert refusals(watch) == 1  # after three refusals, one error line
        assert "unavailable" not in watch.output()
        assert not output.exists()
        token_file.write_text(MASTER)  # fixed without a restart: the next retry reads the file again
        wait_until(lambda: output.exists() and "server web-1" in output.read_text(), 20, what="the config written")
        assert refusals(watch) == 1
    finally:
        watch.stop()
