"""Operator overrides from Consul KV on real Consul, real HAProxy and real HTTP: each kind applied and
removed (drain, disable and weight live, a route through a validated reload), a malformed document
ignored with its log line, shown by status, explain and the metrics, read with an ACL-limited token."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest
import requests

from discovery.haproxy.runtime import RuntimeAPI
from testkit import DISCO, ConsulAgent, Proc, take_port, wait_until

from .apps import Apps, reached, start_routed
from .conftest import Stack
from .test_acl import MASTER, READ_RULES, acl_consul  # noqa: F401  (the fixture)

KEY = "disco/overrides/"


@pytest.fixture
def apps(stack: Stack) -> Iterator[Apps]:
    a = Apps(stack.consul)
    yield a
    a.close()


def put(consul: ConsulAgent, service: str, document: object, raw: str | None = None) -> None:
    body = raw if raw is not None else json.dumps(document)
    requests.put(f"{consul.url}/v1/kv/{KEY}{service}", data=body, timeout=2, headers=consul.headers).raise_for_status()


def delete(consul: ConsulAgent, service: str) -> None:
    requests.delete(f"{consul.url}/v1/kv/{KEY}{service}", timeout=2, headers=consul.headers).raise_for_status()


def states(stack: Stack, backend: str = "web") -> dict[str, str]:
    return {
        name: "maint" if s.in_maintenance else "drain" if s.draining else "ready"
        for name, s in RuntimeAPI(stack.admin_socket).servers(backend).items()
    }


def disco(stack: Stack, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *DISCO,
            *argv,
            *("--output", str(stack.output), "--runtime-socket", str(stack.admin_socket)),
            *("--consul-addr", stack.consul.url),
            *stack.watch_values(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_each_override_kind_applied_and_removed_a_malformed_one_ignored(stack: Stack, apps: Apps):
    for name in ("w1", "w2", "w3"):
        apps.start("web", name)
    apps.start("api", "a1", ("urlprefix-/api",))
    metrics_port = take_port()
    stack.watch_args = (lambda orig: lambda *extra: orig("--listen", f"127.0.0.1:{metrics_port}", *extra))(
        stack.watch_args
    )
    start_routed(stack, ["web", "api"], expect=4)
    assert stack.watch is not None
    wait_until(lambda: "kv(disco/overrides/|recurse)" in stack.watch.output(), 10, what="the overrides watch")
    reloads = stack.reloads()

    # Drain: HAProxy's DRAIN state, no new requests; shown by status, explain and the metrics.
    put(stack.consul, "web", {"drain": ["w2"], "note": "INC-42"})
    wait_until(lambda: states(stack).get("w2") == "drain", 10, what="w2 draining")
    assert set(reached(stack, 30)) == {"w1", "w3"}
    status = disco(stack, "status", "--service", "web", "--service", "api")
    assert status.returncode == 0, status.stdout + status.stderr  # held by an override: not drift
    assert "override disco/overrides/web: web: drain w2 (INC-42)" in status.stdout
    assert "drain (override)" in status.stdout
    explain = disco(stack, "explain", "web/w2")
    assert "drained by operator override disco/overrides/web (INC-42)" in explain.stdout, explain.stdout
    metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
    assert 'disco_overrides_in_force{kind="drain"} 1.0' in metrics
    argv = stack.watch_args()
    argv[argv.index("watch")] = "plan"
    at = argv.index("--listen")
    plan = subprocess.run(argv[:at] + argv[at + 2 :], capture_output=True, text=True, timeout=60, check=False)
    assert plan.returncode == 0, plan.stdout + plan.stderr  # plan sees what watch does: nothing to do

    # Disable (MAINT) and a pinned weight, in one document; the drain ends.
    put(stack.consul, "web", {"disable": ["w2"], "weight": {"w1": 3}})
    wait_until(lambda: states(stack).get("w2") == "maint", 10, what="w2 in maintenance")
    wait_until(lambda: RuntimeAPI(stack.admin_socket).servers("web")["w1"].weight == 3, 10, what="w1 weight 3")
    seen = reached(stack, 400)
    assert "w2" not in seen and 255 <= seen["w1"] <= 345, seen  # 3:1

    # Deleting the key ends it.
    delete(stack.consul, "web")
    wait_until(lambda: set(states(stack).values()) == {"ready"}, 10, what="every server ready again")
    wait_until(lambda: RuntimeAPI(stack.admin_socket).servers("web")["w1"].weight == 1, 10, what="w1 weight 1")
    assert set(reached(stack, 30)) == {"w1", "w2", "w3"}
    assert stack.reloads() == reloads  # drain, disable and weight: all live
    print(f"\ndrain, disable, weight applied and removed: {stack.reloads() - reloads} reloads")

    # A route taken out: HAProxy cannot change its routing rules live, so a validated reload.
    put(stack.consul, "api", {"disable_routes": ["/api"]})
    wait_until(lambda: set(reached(stack, 6, "/api")) <= {"w1", "w2", "w3"}, 20, what="/api to the default backend")

    # A malformed document: one log line naming its key; the route override keeps applying.
    put(stack.consul, "web", None, raw='{"drain": "w1"')
    line = "override disco/overrides/web ignored: not JSON"
    wait_until(lambda: line in stack.watch.output(), 10, what="the malformed document logged")
    assert set(reached(stack, 6, "/api")) <= {"w1", "w2", "w3"}
    assert set(reached(stack, 30)) == {"w1", "w2", "w3"}
    metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
    assert "disco_overrides_malformed 1.0" in metrics
    assert 'disco_overrides_in_force{kind="disable_routes"} 1.0' in metrics
    status = disco(stack, "status", "--service", "web", "--service", "api")
    assert "override disco/overrides/web ignored: not JSON" in status.stdout

    delete(stack.consul, "api")
    wait_until(lambda: set(reached(stack, 3, "/api")) == {"a1"}, 20, what="/api back to api")
    assert stack.watch.output().count(line) == 1
    print(f"route taken out and back: {stack.reloads() - reloads} reloads (validated)")

    # A drain in force survives a reload (a route taken out again): set again by the pass that reloaded.
    put(stack.consul, "web", {"drain": ["w2"]})
    wait_until(lambda: states(stack).get("w2") == "drain", 10, what="w2 draining")
    before = stack.reloads()
    put(stack.consul, "api", {"disable_routes": ["/api"]})
    wait_until(lambda: stack.reloads() > before, 20, what="the reload for the route")
    wait_until(lambda: states(stack).get("w2") == "drain", 10, what="w2 draining after the reload")
    assert "w2" not in reached(stack, 30)


def test_an_acl_token_with_key_read_on_the_prefix_only_reads_the_overrides(acl_consul: ConsulAgent, tmp_path):  # noqa: F811
    rules = READ_RULES + '\nkey_prefix "disco/overrides/" { policy = "read" }'
    policy = acl_consul.put("/v1/acl/policy", {"Name": "disco-watch", "Rules": rules})
    token = acl_consul.put("/v1/acl/token", {"Policies": [{"ID": policy["ID"]}]})["SecretID"]
    acl_consul.put("/v1/agent/service/register", {"Name": "web", "ID": "web-1", "Address": "127.0.0.1", "Port": 8080})
    put(acl_consul, "web", {"weight": {"web-1": 7}})
    for key in ("disco/other", "secret/x"):  # the token cannot read these, and need not
        requests.put(f"{acl_consul.url}/v1/kv/{key}", data="x", timeout=2, headers=acl_consul.headers)
    denied = requests.get(f"{acl_consul.url}/v1/kv/secret/x", timeout=2, headers={"X-Consul-Token": token})
    assert denied.status_code in (403, 404)
    argv = [*DISCO, "watch", "--service", "web", "--output", str(tmp_path / "h.cfg"), "--dry-run"]
    argv += [
        "--consul-addr",
        acl_consul.url,
        "--set",
        f"frontend_port={take_port()}",
        "--set",
        f"stats_port={take_port()}",
    ]
    watch = Proc(argv, tmp_path / "watch.log", env={**os.environ, "CONSUL_HTTP_TOKEN": token})
    try:
        wait_until(
            lambda: "server web-1 127.0.0.1:8080 check inter 1s fall 2 rise 1 weight 7" in watch.output(),
            20,
            what="the pinned weight rendered",
        )
        assert "refused" not in watch.output()
    finally:
        watch.stop()
