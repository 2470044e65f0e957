"""No silent divergence: when the runtime API fails mid-change, HAProxy is brought to the file by a reload.

Core issue, defect 1: a socket error from the runtime API (not only a refused
command) must fall back to a validated reload; before, the file was written,
the log said "the live config is unchanged", and the next identical pass was
"unchanged", so HAProxy and the file stayed different.
"""

from __future__ import annotations

import sys

from .conftest import Stack
from testkit import REPO, instances_reached, take_port, wait_until


def webapp(stack: Stack, answer_as: str) -> int:
    port = take_port()
    stack.spawn([sys.executable, str(REPO / "webapp/app.py"), "--bind", "127.0.0.1", "--port", str(port),
                 "--id", answer_as], f"webapp-{answer_as}")
    wait_until(lambda: answer_as in instances_reached(f"http://127.0.0.1:{port}/", 1), 10, what=f"{answer_as} up")
    return port


def register(stack: Stack, service_id: str, port: int) -> None:
    """Through Consul's own API: the same ID at another port is an address change of one server."""
    stack.consul.put("/v1/agent/service/register",
                     {"ID": service_id, "Name": "web", "Address": "127.0.0.1", "Port": port})


def test_a_runtime_socket_failure_falls_back_to_a_reload(stack: Stack):
    old_port, new_port = webapp(stack, "old-process"), webapp(stack, "new-process")
    register(stack, "web-1", old_port)
    wait_until(lambda: stack.consul.passing("web") == ["web-1"], 10, what="web-1 passing")
    stack.start_balancer(live=True)
    wait_until(lambda: set(instances_reached(stack.lb, 3)) == {"old-process"}, 20, what="web-1 through HAProxy")
    reloads = stack.reloads()

    # The admin socket goes away (HAProxy busy, a stale path, a full backlog: any socket error).
    stack.admin_socket.rename(stack.admin_socket.with_name("admin.sock.moved"))
    register(stack, "web-1", new_port)

    # HAProxy must end up running what the file says: the new port, through a validated reload.
    wait_until(lambda: set(instances_reached(stack.lb, 6)) == {"new-process"}, 20,
               what="HAProxy routing web-1 to its new port")
    assert stack.reloads() == reloads + 1
    assert f"127.0.0.1:{new_port}" in stack.output.read_text()
    assert stack.watch is not None
    log = stack.watch.output()
    assert "live update failed" in log and "reloading instead" in log
    assert "the live config is unchanged" not in log
