"""`disco status` against a real Consul, HAProxy (runtime API) and watcher: drift made by hand
is shown, then gone once the watcher repairs it on its next live change."""

from __future__ import annotations

import json
import subprocess

from discovery.haproxy.runtime import RuntimeAPI
from testkit import DISCO, REPO, wait_until

from .conftest import Stack


def register(stack: Stack, sid: str, port: int) -> None:
    stack.consul.put("/v1/agent/service/register", {"Name": "web", "ID": sid, "Address": "127.0.0.1", "Port": port})


def status(stack: Stack, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [
        *DISCO,
        "status",
        "--service",
        "web",
        "--consul-addr",
        stack.consul.url,
        "--output",
        str(stack.output),
        "--runtime-socket",
        str(stack.admin_socket),
        # The watcher's values: status renders what Consul says with them, and compares it all.
        *("--set", f"frontend_port={stack.lb_port}", "--set", f"stats_port={stack.stats_port}"),
        *("--set", "bind_address=127.0.0.1"),
        *extra,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO)


def test_status_shows_drift_made_by_hand_and_none_after_the_repair(stack: Stack):
    register(stack, "web-1", 9001)
    register(stack, "web-2", 9002)
    wait_until(lambda: stack.consul.passing("web") == ["web-1", "web-2"], 10, what="the catalog")
    stack.start_balancer(live=True)
    wait_until(lambda: stack.servers_in_config() == {"web-1", "web-2"}, 10, what="both in the config")
    # The watcher's first pass reloads HAProxy (it cannot know what HAProxy runs until then) and
    # would wipe a drift made before it: make the drift after it.
    assert stack.watch is not None
    wait_until(lambda: "applied 1 backends, 2 servers" in stack.watch.output(), 20, what="the watcher's first pass")

    result = status(stack)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "in step" in result.stdout and "web-1" in result.stdout and "127.0.0.1:9002" in result.stdout

    RuntimeAPI(stack.admin_socket).set_state("web", "web-2", "maint")  # by hand, behind disco's back
    result = status(stack, "--json")
    assert result.returncode == 3, result.stdout + result.stderr
    report = json.loads(result.stdout)
    [backend] = report["backends"]
    rows = {row["name"]: row for row in backend["servers"]}
    assert rows["web-2"]["drift"] == "in maintenance in HAProxy" and rows["web-2"]["state"] == "maint"
    assert rows["web-1"]["drift"] is None and rows["web-1"]["state"] == "ready" and rows["web-1"]["weight"] == 1
    text = status(stack)
    assert text.returncode == 3 and "DRIFT: in maintenance in HAProxy" in text.stdout

    register(stack, "web-3", 9003)  # the next live change reads the backend back, sees the drift, reloads
    wait_until(lambda: status(stack).returncode == 0, 20, what="status in step after the repair")
    assert stack.servers_in_config() == {"web-1", "web-2", "web-3"}
    assert stack.watch is not None and "live update failed" in stack.watch.output()

    # Consul ahead of the file (the watcher stopped): pending, exit 4.
    stack.watch.stop()
    register(stack, "web-4", 9004)
    wait_until(lambda: "web-4" in stack.consul.passing("web"), 10, what="web-4 in Consul")
    result = status(stack)
    assert result.returncode == 4 and "pending: Consul routes it, the file does not list it yet" in result.stdout
