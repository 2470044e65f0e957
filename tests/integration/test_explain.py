"""`disco explain` names each reason an instance is not routed, against a real Consul, HAProxy
and watcher: a failing check (with its output), maintenance mode, the tag filter, an address
that is not an IP, and a hold of the sanity gate."""

from __future__ import annotations

import json
import subprocess

from testkit import DISCO, REPO, take_port, wait_until

from .conftest import Stack


def register(stack: Stack, sid: str, port: int, address: str = "127.0.0.1", tags: tuple[str, ...] = ("blue",)) -> None:
    stack.consul.put(
        "/v1/agent/service/register",
        {
            "Name": "web",
            "ID": sid,
            "Address": address,
            "Port": port,
            "Tags": list(tags),
            "Check": {"TTL": "10m", "Status": "passing"},
        },
    )


def explain(stack: Stack, target: str, listen: str, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [
        *DISCO,
        "explain",
        target,
        "--consul-addr",
        stack.consul.url,
        "--output",
        str(stack.output),
        "--tag",
        "blue",
        "--runtime-socket",
        str(stack.admin_socket),
        "--listen",
        listen,
        *extra,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO)


def test_explain_names_each_cause(stack: Stack):
    register(stack, "web-1", 9001)
    register(stack, "web-2", 9002)
    stack.consul.put("/v1/agent/check/fail/service:web-2?note=HTTP%20GET%20/health:%20503%20Service%20Unavailable")
    register(stack, "web-3", 9003)
    stack.consul.put("/v1/agent/service/maintenance/web-3?enable=true&reason=kernel%20upgrade")
    register(stack, "web-4", 9004, tags=("green",))
    register(stack, "web-5", 9005, address="web5.example")
    wait_until(lambda: stack.consul.passing("web") == ["web-1", "web-4", "web-5"], 10, what="the catalog")

    listen = f"127.0.0.1:{take_port()}"
    stack.watch_args = (lambda orig: lambda *extra: orig("--tag", "blue", "--listen", listen, *extra))(stack.watch_args)
    stack.start_balancer(live=True)
    wait_until(lambda: stack.servers_in_config() == {"web-1"}, 10, what="web-1 alone in the config")
    # The watcher's first view must have web-1: the gate compares a change with the view before it.
    assert stack.watch is not None
    wait_until(lambda: "applied 1 backends, 1 servers" in stack.watch.output(), 20, what="the watcher's first pass")

    result = explain(stack, "web", listen)
    assert result.returncode == 3, result.stdout + result.stderr  # some are not routed
    out = result.stdout
    assert "web/web-1 (node " in out and "127.0.0.1:9001, passing): routed" in out
    assert "web/web-2" in out and "critical): not routed" in out
    assert "check 'service:web-2' (Service 'web' check) is critical: HTTP GET /health: 503 Service Unavailable" in out
    assert "maintenance mode on the instance: kernel upgrade" in out
    assert "filtered out by --tag blue: its tags are ['green']" in out
    assert "refused by the catalog checks: address 'web5.example' is not an IP address" in out

    only = explain(stack, "web/web-1", listen, "--json")
    assert only.returncode == 0, only.stdout + only.stderr
    [item] = json.loads(only.stdout)
    assert item["server"] == "web-1" and item["routed"] is True and item["reasons"] == []

    # web-1 fails too: no instance left, so the gate keeps the last servers and explain says so.
    stack.consul.put("/v1/agent/check/fail/service:web-1?note=connection%20refused")
    result = wait_until(
        lambda: (r := explain(stack, "web/web-1", listen)) and "sanity gate" in r.stdout and r,
        15,
        what="the gate hold in explain's answer",
    )
    assert "check 'service:web-1' (Service 'web' check) is critical: connection refused" in result.stdout
    assert "the sanity gate holds the newest change of web (every instance is gone)" in result.stdout
    assert "passing): routed" not in result.stdout and "critical): routed" in result.stdout  # kept by the gate

    unknown = explain(stack, "web/nobody", listen)
    assert unknown.returncode == 2 and unknown.stderr.startswith("disco: error: ")
