"""A three-server Consul cluster whose leader is killed: traffic goes on, the watcher goes on,
and changes flow again once a new leader is elected."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

import requests

from discovery.consul.agent import find_consul
from testkit import DISCO, REPO, Proc, instances_reached, take_port, wait_until


class Server:
    def __init__(self, workdir, name: str, peers: list[int], serf: int) -> None:
        self.http, self.serf = take_port(), serf
        self.dir = workdir / name
        self.dir.mkdir()
        config = {"node_name": name, "server": True, "bootstrap_expect": 3, "bind_addr": "127.0.0.1",
                  "client_addr": "127.0.0.1", "data_dir": str(self.dir / "data"), "log_level": "WARN",
                  "retry_join": [f"127.0.0.1:{p}" for p in peers if p != serf],
                  "performance": {"raft_multiplier": 1}, "disable_update_check": True,
                  "ports": {"http": self.http, "dns": -1, "grpc": -1, "serf_lan": serf, "serf_wan": take_port(),
                            "server": take_port()}}
        (self.dir / "consul.json").write_text(json.dumps(config))
        self.proc = Proc([find_consul(), "agent", "-config-file", str(self.dir / "consul.json")], self.dir / "log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def leader(self) -> str:
        return requests.get(f"{self.url}/v1/status/leader", timeout=2).json()

    def put(self, path: str, body) -> None:
        requests.put(f"{self.url}{path}", data=json.dumps(body), timeout=5).raise_for_status()


def test_leader_killed_traffic_and_watcher_go_on(tmp_path):
    serfs = [take_port() for _ in range(3)]
    servers = [Server(tmp_path, f"s{n}", serfs, serf) for n, serf in enumerate(serfs)]
    procs: list[Proc] = [s.proc for s in servers]
    lb = take_port()
    try:
        wait_until(lambda: all(s.leader() for s in servers), 60, interval=0.2, what="a leader")
        leader_addr = servers[0].leader()
        # The watcher and the instances use a follower's agent, as a client agent would.
        follower = next(s for s in servers if s.leader() and json.loads((s.dir / "consul.json").read_text())
                        ["ports"]["server"] != int(leader_addr.rsplit(":", 1)[1]))
        leader = next(s for s in servers if s is not follower and json.loads((s.dir / "consul.json").read_text())
                      ["ports"]["server"] == int(leader_addr.rsplit(":", 1)[1]))
        for n in (1, 2, 3):
            port = take_port()
            procs.append(Proc([sys.executable, str(REPO / "webapp/app.py"), "--bind", "127.0.0.1", "--port",
                               str(port), "--id", f"web-{n}"], tmp_path / f"web-{n}.log"))
            follower.put("/v1/agent/service/register", {"Name": "web", "ID": f"web-{n}", "Address": "127.0.0.1",
                                                        "Port": port})
        out, master = tmp_path / "haproxy.cfg", tmp_path / "master.sock"
        args = [*DISCO, "watch", "--service", "web", "--output", str(out), "--consul-addr", follower.url,
                "--set", f"frontend_port={lb}", "--set", f"stats_port={take_port()}", "--set", "bind_address=127.0.0.1",
                "--runtime-socket", str(tmp_path / "admin.sock")]
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
        leader.proc.signal(signal.SIGKILL)
        t = time.monotonic()
        wait_until(lambda: follower.leader() not in ("", leader_addr), 60, interval=0.2, what="a new leader")
        election = time.monotonic() - t
        port = take_port()
        procs.append(Proc([sys.executable, str(REPO / "webapp/app.py"), "--bind", "127.0.0.1", "--port", str(port),
                           "--id", "web-4"], tmp_path / "web-4.log"))
        follower.put("/v1/agent/service/register", {"Name": "web", "ID": "web-4", "Address": "127.0.0.1",
                                                    "Port": port})
        wait_until(lambda: "web-4" in instances_reached(url, 12), 30, what="web-4 routed after the election")
        stop.set()
        thread.join(10)
        assert failures == [] and ok[0] > 50
        assert watch.alive()
        print(f"election after leader kill: {election:.1f}s; {ok[0]} requests, 0 failed")
    finally:
        for proc in reversed(procs):
            proc.stop()
