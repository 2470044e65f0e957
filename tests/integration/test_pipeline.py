"""The pipeline end to end on a real Consul agent, a real HAProxy and the real `disco` commands.

Every assertion is what a user checks: which instances answer requests sent
through HAProxy, and what the config file on disk says.
"""

from __future__ import annotations

import signal
import subprocess

import pytest
import requests

from testkit import instances_reached, wait_until

from .conftest import Stack


def three(stack: Stack) -> dict[str, object]:
    fails = {name: stack.add_webapp(name) for name in ("web-1", "web-2", "web-3")}
    wait_until(lambda: len(stack.consul.passing("web")) == 3, 20, what="3 passing instances in Consul")
    stack.start_balancer()
    wait_until(
        lambda: set(instances_reached(stack.lb, 9)) == {"web-1", "web-2", "web-3"},
        20,
        what="all 3 instances answering through HAProxy",
    )
    return fails


def test_three_registered_instances_are_all_reached(stack: Stack):
    three(stack)
    seen = instances_reached(stack.lb, 30)
    assert set(seen) == {"web-1", "web-2", "web-3"}
    assert min(seen.values()) >= 8  # round robin: each about a third
    assert stack.servers_in_config() == {"web-1", "web-2", "web-3"}

    def stats_page() -> list[tuple[str, str]]:
        csv = requests.get(f"http://127.0.0.1:{stack.stats_port}/;csv", timeout=3).text
        return sorted(
            (r[1], r[17]) for r in (row.split(",") for row in csv.splitlines()) if r[0] == "web" and r[1] != "BACKEND"
        )

    # HAProxy's own checks settle within a couple of intervals: "UP 1/2" first, then "UP".
    wait_until(
        lambda: stats_page() == [("web-1", "UP"), ("web-2", "UP"), ("web-3", "UP")],
        10,
        what="3 servers UP on the stats page",
    )


def test_deregistered_instance_gets_no_more_traffic(stack: Stack):
    three(stack)
    assert stack.registers["web-2"].stop() == 0  # SIGTERM: deregister and exit 0
    assert "deregistered web-2" in stack.registers["web-2"].output()
    wait_until(lambda: "web-2" not in stack.servers_in_config(), 20, what="web-2 out of the config")
    wait_until(lambda: set(instances_reached(stack.lb, 6)) == {"web-1", "web-3"}, 20, what="HAProxy reloaded")
    assert set(instances_reached(stack.lb, 30)) == {"web-1", "web-3"}


def test_instance_failing_its_consul_check_gets_no_more_traffic(stack: Stack):
    fails = three(stack)
    fails["web-3"].touch()  # its /health now answers 503
    wait_until(lambda: "web-3" not in stack.servers_in_config(), 15, what="web-3 out of the config")
    wait_until(lambda: set(instances_reached(stack.lb, 6)) == {"web-1", "web-2"}, 20, what="HAProxy reloaded")
    assert set(instances_reached(stack.lb, 30)) == {"web-1", "web-2"}
    fails["web-3"].unlink()  # healthy again: back in
    wait_until(lambda: "web-3" in stack.servers_in_config(), 15, what="web-3 back in the config")
    wait_until(lambda: "web-3" in instances_reached(stack.lb, 9), 20, what="web-3 answering again")


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_consul_down_keeps_serving_and_changes_flow_once_it_is_back(stack: Stack, how: str):
    three(stack)
    assert stack.watch is not None
    # The watcher has made its first pass and is inside a long poll.
    wait_until(lambda: "applied 1 backends, 3 servers" in stack.watch.output(), 20, what="the watcher's first pass")
    before = stack.output.read_text()
    stack.consul.stop(kill=how == "kill")
    wait_until(lambda: stack.watch.output().count("unavailable") >= 2, 20, what="the watcher retrying")
    assert stack.watch.alive()
    assert set(instances_reached(stack.lb, 30)) == {"web-1", "web-2", "web-3"}
    assert stack.output.read_text() == before

    stack.consul.start()  # a dev agent forgets everything: disco register puts the instances back
    wait_until(lambda: len(stack.consul.passing("web")) == 3, 20, what="instances registered again")
    stack.add_webapp("web-4")
    wait_until(lambda: "web-4" in stack.servers_in_config(), 20, what="web-4 in the config")
    wait_until(lambda: "web-4" in instances_reached(stack.lb, 12), 20, what="web-4 answering")
    assert set(instances_reached(stack.lb, 40)) == {"web-1", "web-2", "web-3", "web-4"}


def test_register_puts_back_a_service_the_agent_forgot(stack: Stack):
    stack.add_webapp("web-1")
    wait_until(lambda: stack.consul.passing("web") == ["web-1"], 20, what="web-1 passing")
    stack.consul.put("/v1/agent/service/deregister/web-1")  # (disco register checks every second)
    wait_until(lambda: "web-1" in stack.consul.agent_services(), 5, what="web-1 registered again")
    assert "registering it again" in stack.registers["web-1"].output()


def test_once_writes_a_valid_config_and_exits(stack: Stack):
    stack.add_webapp("web-1")
    wait_until(lambda: stack.consul.passing("web") == ["web-1"], 20, what="web-1 passing")
    result = subprocess.run(stack.watch_args("--once"), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert stack.servers_in_config() == {"web-1"}
    assert subprocess.run(["haproxy", "-c", "-f", str(stack.output)], capture_output=True).returncode == 0


def test_dry_run_prints_the_config_and_touches_nothing(stack: Stack):
    stack.add_webapp("web-1")
    wait_until(lambda: stack.consul.passing("web") == ["web-1"], 20, what="web-1 passing")
    # Beside a running watcher: its output, a candidate it is validating, and no last-good copy yet.
    stack.output.write_text("# the running config\n")
    candidate = stack.workdir / f".{stack.output.name}.x1y2z3.tmp"
    candidate.write_text("# a candidate being validated\n")

    def snapshot() -> dict[str, tuple[bytes, int]]:
        return {
            p.name: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in stack.workdir.iterdir()
            if p.is_file() and not p.name.endswith(".log")
        }

    before = snapshot()
    result = subprocess.run(stack.watch_args("--once", "--dry-run"), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "server web-1 127.0.0.1:" in result.stdout
    assert snapshot() == before  # nothing deleted, written or touched: no .last-good either


def test_dry_run_with_bootstrap_prints_the_bootstrap_config_and_writes_nothing(stack: Stack):
    """`--bootstrap` writes OUTPUT and OUTPUT.last-good when there is no config yet; not in a dry run."""
    before = sorted(p.name for p in stack.workdir.iterdir())
    result = subprocess.run(
        stack.watch_args("--bootstrap", "--once", "--dry-run"), check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "backend web" in lines and not [ln for ln in lines if ln.strip().startswith("server ")]  # no instance
    assert "not written" in result.stderr
    assert sorted(p.name for p in stack.workdir.iterdir()) == before  # no OUTPUT, no .last-good, no temp file
    assert not stack.output.exists()


def test_template_haproxy_rejects_leaves_live_config_and_next_good_edit_applies(stack: Stack, tmp_path):
    from discovery.haproxy.render import DEFAULT_TEMPLATE

    template = tmp_path / "custom.cfg.j2"
    template.write_text(DEFAULT_TEMPLATE.read_text())
    stack.add_webapp("web-1")
    wait_until(lambda: stack.consul.passing("web") == ["web-1"], 20, what="web-1 passing")
    stack.watch_args = (lambda orig: lambda *extra: orig("--template", str(template), *extra))(stack.watch_args)
    stack.start_balancer()
    wait_until(lambda: set(instances_reached(stack.lb, 3)) == {"web-1"}, 20, what="web-1 through HAProxy")
    live = stack.output.read_text()

    template.write_text(template.read_text().replace('or "roundrobin"', 'or "no_such_algorithm"'))
    assert stack.watch is not None
    wait_until(
        lambda: "HAProxy rejected the rendered config" in stack.watch.output(),
        10,
        what="the validation error in the watcher's log",
    )
    assert f"{stack.output}:" in stack.watch.output()  # says where
    assert stack.output.read_text() == live
    assert set(instances_reached(stack.lb, 6)) == {"web-1"}

    template.write_text(DEFAULT_TEMPLATE.read_text().replace('or "roundrobin"', 'or "leastconn"'))
    wait_until(lambda: "balance leastconn" in stack.output.read_text(), 20, what="the good edit applied")
    assert set(instances_reached(stack.lb, 6)) == {"web-1"}


def test_watch_exits_cleanly_on_sigterm(stack: Stack):
    stack.add_webapp("web-1")
    wait_until(lambda: stack.consul.passing("web") == ["web-1"], 20, what="web-1 passing")
    stack.start_balancer()
    assert stack.watch is not None
    wait_until(lambda: "applied" in stack.watch.output(), 20, what="a first apply")
    stack.watch.signal(signal.SIGTERM)
    assert stack.watch.popen.wait(10) == 0


def test_catalog_wide_watch_follows_the_same_changes(stack: Stack):
    """--watch-mode catalog: two blocking queries for the datacenter instead of one per service."""
    stack.watch_args = (lambda orig: lambda *extra: orig("--watch-mode", "catalog", *extra))(stack.watch_args)
    fails = three(stack)
    assert stack.watch is not None
    wait_until(lambda: "with 2 blocking queries" in stack.watch.output(), 20, what="the watch mode in the log")
    fails["web-2"].touch()
    wait_until(lambda: set(instances_reached(stack.lb, 9)) == {"web-1", "web-3"}, 15, what="web-2 out")
    stack.registers["web-3"].stop()
    wait_until(lambda: set(instances_reached(stack.lb, 9)) == {"web-1"}, 15, what="web-3 out")
    stack.add_webapp("web-4")
    wait_until(lambda: set(instances_reached(stack.lb, 9)) == {"web-1", "web-4"}, 15, what="web-4 in")
    assert stack.servers_in_config() == {"web-1", "web-4"}
