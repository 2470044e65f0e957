"""One comparison behind `status`, `plan` and `explain` (issue 18, items 3 and 4), against a real
Consul, HAProxy and watcher: they agree with each other and with what the watcher does."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from testkit import DISCO, REPO, wait_until

from .conftest import Stack


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DISCO, *argv], check=False, capture_output=True, text=True, timeout=60, cwd=REPO)


def watch_toml(stack: Stack) -> Path:
    """The watcher's settings as a `--config` file, which status, plan and explain take too."""
    path = stack.workdir / "watch.toml"
    path.write_text(
        f'service = ["web"]\noutput = "{stack.output}"\nconsul-addr = "{stack.consul.url}"\n'
        f'runtime-socket = "{stack.admin_socket}"\n'
        f'[set]\nfrontend_port = "{stack.lb_port}"\nstats_port = "{stack.stats_port}"\nbind_address = "127.0.0.1"\n'
    )
    return path


def register(stack: Stack, sid: str, port: int, meta: dict[str, str] | None = None) -> None:
    stack.consul.put(
        "/v1/agent/service/register",
        {"Name": "web", "ID": sid, "Address": "127.0.0.1", "Port": port, "Meta": meta or {}},
    )


def test_status_sees_a_pending_weight_change_as_plan_does(stack: Stack):
    register(stack, "web-1", 9001)
    register(stack, "web-2", 9002)
    wait_until(lambda: stack.consul.passing("web") == ["web-1", "web-2"], 10, what="the catalog")
    stack.start_balancer(live=True)
    assert stack.watch is not None
    wait_until(lambda: "applied 1 backends, 2 servers" in stack.watch.output(), 20, what="the watcher's first pass")
    config = str(watch_toml(stack))
    first = run("status", "--config", config)
    assert first.returncode == 0, first.stdout + first.stderr

    stack.watch.stop()  # the watcher is down; Consul changes a weight
    register(stack, "web-1", 9001, {"disco-weight": "5"})
    wait_until(
        lambda: "disco-weight" in json.dumps(stack.consul.agent_services()["web-1"]), 10, what="the meta in Consul"
    )
    plan = run("plan", "--config", config)
    assert plan.returncode == 3 and "set server web/web-1 weight 5" in plan.stdout, plan.stdout + plan.stderr
    status = run("status", "--config", config, "--json")
    assert status.returncode == 4, status.stdout + status.stderr
    rows = {row["name"]: row for row in json.loads(status.stdout)["backends"][0]["servers"]}
    assert rows["web-1"]["pending"] == "Consul says weight 5 (the file: 1)" and rows["web-1"]["drift"] is None
    assert rows["web-2"]["pending"] is None


def test_explain_names_servers_as_the_watcher_does_and_refuses_an_unknown_service(stack: Stack):
    # One service ID on two nodes: the one on n1 fails its check, the one on n2 passes.
    for node, port, state in (("n1", 9001, "critical"), ("n2", 9002, "passing")):
        stack.consul.put(
            "/v1/catalog/register",
            {
                "Node": node,
                "Address": "127.0.0.1",
                "Service": {"ID": "web-1", "Service": "web", "Address": "127.0.0.1", "Port": port},
                "Checks": [
                    {
                        "CheckID": "web-1-check",
                        "Name": "web check",
                        "ServiceID": "web-1",
                        "Status": state,
                        "Output": "refused",
                    }
                ],
            },
        )
    wait_until(lambda: stack.consul.passing("web") == ["web-1"], 10, what="the catalog")
    stack.start_balancer(live=True)
    assert stack.watch is not None
    wait_until(lambda: "applied 1 backends, 1 servers" in stack.watch.output(), 20, what="the watcher's first pass")
    assert stack.servers_in_config() == {"web-1"}  # the watcher names the passing one web-1

    config = str(watch_toml(stack))
    result = run("explain", "web", "--config", config, "--json")
    assert result.returncode == 3, result.stdout + result.stderr  # the failing one is not routed
    items = {item["server"]: item for item in json.loads(result.stdout)}
    assert set(items) == {"web-1", "n1:web-1"}, items
    assert items["web-1"]["node"] == "n2" and items["web-1"]["routed"] is True and items["web-1"]["reasons"] == []
    failing = items["n1:web-1"]
    assert failing["routed"] is False and failing["status"] == "critical"
    assert failing["reasons"] == ["check 'web-1-check' (web check) is critical: refused"]
    assert run("explain", "web/web-1", "--config", config).returncode == 0


def test_explain_of_a_service_nobody_knows_is_bad_input(stack: Stack):
    register(stack, "web-1", 9001)
    wait_until(lambda: stack.consul.passing("web") == ["web-1"], 10, what="the catalog")
    typo = run("explain", "wbe", "--consul-addr", stack.consul.url, "--output", str(stack.output))
    assert typo.returncode == 2, typo.stdout + typo.stderr
    assert typo.stdout == "" and typo.stderr == "disco: error: Consul, the config and HAProxy know no service 'wbe'\n"
