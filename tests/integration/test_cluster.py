"""A three-server Consul cluster whose leader is killed: traffic goes on, the watcher goes on,
and changes flow again once a new leader is elected."""

from __future__ import annotations

import threading
import time

import requests

from testkit import DISCO, ConsulCluster, Proc, instances_reached, take_port, wait_until, webapp_command


def test_leader_killed_traffic_and_watcher_go_on(tmp_path):
    cluster = ConsulCluster(tmp_path / "cluster")
    procs: list[Proc] = []
    lb = take_port()
    try:
        cluster.start()
        leader = cluster.leader()
        leader_addr = leader.raft_address
        # The watcher and the instances use a follower's agent, as a client agent would.
        follower = cluster.followers()[0]
        for n in (1, 2, 3):
            port = take_port()
            procs.append(Proc(webapp_command(port, f"web-{n}"), tmp_path / f"web-{n}.log"))
            follower.put(
                "/v1/agent/service/register", {"Name": "web", "ID": f"web-{n}", "Address": "127.0.0.1", "Port": port}
            )
        out, master = tmp_path / "haproxy.cfg", tmp_path / "master.sock"
        args = [
            *DISCO,
            "watch",
            "--service",
            "web",
            "--output",
            str(out),
            "--consul-addr",
            follower.url,
            "--set",
            f"frontend_port={lb}",
            "--set",
            f"stats_port={take_port()}",
            "--set",
            "bind_address=127.0.0.1",
            "--runtime-socket",
            str(tmp_path / "admin.sock"),
        ]
        procs.append(Proc([*args, "--bootstrap", "--once"], tmp_path / "once.log"))
        wait_until(out.exists, 30, what="bootstrap config")
        procs.append(Proc(["haproxy", "-W", "-S", str(master), "-f", str(out)], tmp_path / "haproxy.log"))
        watch = Proc([*args, "--master-socket", str(master)], tmp_path / "watch.log")
        procs.append(watch)
        url = f"http://127.0.0.1:{lb}/"
        wait_until(lambda: set(instances_reached(url, 9)) == {"web-1", "web-2", "web-3"}, 30, what="3 served")

        failures, ok, stop = [], [0], threading.Event()

        def client() -> None:  # bounded by the test below
            while not stop.is_set():
                try:
                    if requests.get(url, timeout=3, headers={"Connection": "close"}).status_code == 200:
                        ok[0] += 1
                    else:
                        failures.append("non-200")
                except requests.RequestException as exc:
                    failures.append(type(exc).__name__)
                stop.wait(0.01)

        thread = threading.Thread(target=client, daemon=True)
        thread.start()
        leader.kill()
        t = time.monotonic()
        wait_until(lambda: follower.leader() not in ("", leader_addr), 60, interval=0.2, what="a new leader")
        election = time.monotonic() - t
        port = take_port()
        procs.append(Proc(webapp_command(port, "web-4"), tmp_path / "web-4.log"))
        follower.put("/v1/agent/service/register", {"Name": "web", "ID": "web-4", "Address": "127.0.0.1", "Port": port})
        wait_until(lambda: "web-4" in instances_reached(url, 12), 30, what="web-4 routed after the election")
        stop.set()
        thread.join(10)
        assert failures == [] and ok[0] > 50
        assert watch.alive()
        print(f"election after leader kill: {election:.1f}s; {ok[0]} requests, 0 failed")
    finally:
        for proc in reversed(procs):
            proc.stop()
        cluster.stop()
