"""No silent divergence: when the runtime API fails mid-change, HAProxy is brought to the file by a reload.

Core issue, defect 1: a socket error from the runtime API (not only a refused
command) must fall back to a validated reload; before, the file was written,
the log said "the live config is unchanged", and the next identical pass was
"unchanged", so HAProxy and the file stayed different.
"""

from __future__ import annotations

from testkit import instances_reached, take_port, wait_until, webapp_command

from .conftest import Stack


def webapp(stack: Stack, answer_as: str) -> int:
    port = take_port()
    stack.spawn(
        webapp_command(port, answer_as),
        f"webapp-{answer_as}",
    )
    wait_until(lambda: answer_as in instances_reached(f"http://127.0.0.1:{port}/", 1), 10, what=f"{answer_as} up")
    return port


def register(stack: Stack, service_id: str, port: int) -> None:
    """Through Consul's own API: the same ID at another port is an address change of one server."""
    stack.consul.put(
        "/v1/agent/service/register", {"ID": service_id, "Name": "web", "Address": "127.0.0.1", "Port": port}
    )


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
    wait_until(
        lambda: set(instances_reached(stack.lb, 6)) == {"new-process"}, 20, what="HAProxy routing web-1 to its new port"
    )
    assert stack.reloads() == reloads + 1
    assert f"127.0.0.1:{new_port}" in stack.output.read_text()
    assert stack.watch is not None
    log = stack.watch.output()
    assert "live update failed" in log and "reloading instead" in log
    assert "the live config is unchanged" not in log


def test_a_drift_made_while_no_watcher_ran_is_repaired_at_start(stack: Stack):
    """HAProxy changed by hand (or by a watcher killed mid-change) before this watcher started: at
    start it reads HAProxy's servers back, sees they differ from the file, and reloads, with no
    change in Consul needed."""
    from discovery.haproxy.runtime import RuntimeAPI

    for name in ("web-1", "web-2"):
        stack.add_webapp(name)
    wait_until(lambda: len(stack.consul.passing("web")) == 2, 20, what="2 instances passing")
    stack.watch_args = (lambda orig: lambda *extra: orig("--runtime-socket", str(stack.admin_socket), *extra))(
        stack.watch_args
    )
    once = stack.spawn(stack.watch_args("--once"), "watch-once")
    assert once.popen.wait(60) == 0, once.output()
    stack.haproxy = stack.spawn(
        ["haproxy", "-W", "-S", f"{stack.master_socket},mode,600", "-f", str(stack.output)], "haproxy"
    )
    wait_until(stack.admin_socket.exists, 10, what="HAProxy's admin socket")
    api = RuntimeAPI(stack.admin_socket)
    wait_until(lambda: set(api.servers("web")) == {"web-1", "web-2"}, 10, what="HAProxy serving both")
    api.delete_server("web", "web-2")  # the drift, while no watcher runs
    reloads = stack.reloads()

    stack.watch = stack.spawn(stack.watch_args("--master-socket", str(stack.master_socket)), "watch")
    wait_until(lambda: set(instances_reached(stack.lb, 12)) == {"web-1", "web-2"}, 20, what="web-2 served again")
    assert stack.reloads() == reloads + 1
    assert "differs from" in stack.watch.output() and "web/web-2: missing from HAProxy" in stack.watch.output()
