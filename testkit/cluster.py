"""A real three-server Consul cluster on loopback, for tests and benchmarks.

Each server has its own reserved ports (HTTP, serf LAN/WAN, server RPC; no DNS or gRPC) and
its own data directory under the work directory.  Servers keep Prometheus counters (a
retention of one hour), so ``/v1/agent/metrics?format=prometheus`` gives running totals.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import requests

from discovery.consul.agent import find_consul

from .ports import take_port
from .procs import Proc, wait_until

__all__ = ["ClusterServer", "ConsulCluster"]


class ClusterServer:
    """One server agent of a :class:`ConsulCluster`."""

    def __init__(self, workdir: Path, name: str, serf_ports: list[int], serf: int, binary: str) -> None:
        self.name, self.serf, self.binary = name, serf, binary
        self.http, self.rpc = take_port(), take_port()
        self.dir = workdir / name
        self.dir.mkdir(parents=True)
        self.config = self.dir / "consul.json"
        self.config.write_text(
            json.dumps(
                {
                    "node_name": name,
                    "server": True,
                    "bootstrap_expect": len(serf_ports),
                    "bind_addr": "127.0.0.1",
                    "client_addr": "127.0.0.1",
                    "data_dir": str(self.dir / "data"),
                    "log_level": "WARN",
                    "retry_join": [f"127.0.0.1:{p}" for p in serf_ports if p != serf],
                    "retry_interval": "1s",
                    "performance": {"raft_multiplier": 1},
                    "disable_update_check": True,
                    "telemetry": {"prometheus_retention_time": "1h", "disable_hostname": True},
                    "ports": {
                        "http": self.http,
                        "dns": -1,
                        "grpc": -1,
                        "serf_lan": serf,
                        "serf_wan": take_port(),
                        "server": self.rpc,
                    },
                }
            )
        )
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    @property
    def raft_address(self) -> str:
        """How ``/v1/status/leader`` names this server."""
        return f"127.0.0.1:{self.rpc}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.popen.pid

    def start(self) -> None:
        self.proc = Proc([self.binary, "agent", "-config-file", str(self.config)], self.dir / "consul.log")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None:
            self.proc.signal(signal.SIGKILL)
            self.proc.stop()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def leader(self) -> str:
        """The leader's Raft address as this server sees it, ``""`` while there is none."""
        return str(requests.get(f"{self.url}/v1/status/leader", timeout=2).json() or "")

    def put(self, path: str, body: Any = None) -> Any:
        response = requests.put(f"{self.url}{path}", data=json.dumps(body) if body is not None else None, timeout=5)
        response.raise_for_status()
        return response.json() if response.content else None

    def cpu_seconds(self) -> float:
        """utime + stime of the server process, from /proc."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def metrics(self) -> str:
        """Prometheus text of ``/v1/agent/metrics``."""
        response = requests.get(f"{self.url}/v1/agent/metrics", params={"format": "prometheus"}, timeout=5)
        response.raise_for_status()
        return response.text


class ConsulCluster:
    """Three (or ``size``) Consul servers on loopback that elect a leader among themselves."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        binary = find_consul(os.environ.get("DISCO_CONSUL_BIN"))
        serfs = [take_port() for _ in range(size)]
        self.servers = [ClusterServer(workdir, f"s{n}", serfs, serf, binary) for n, serf in enumerate(serfs)]

    def start(self, timeout: float = 60.0) -> None:
        for server in self.servers:
            server.start()
        wait_until(lambda: all(s.leader() for s in self.servers), timeout, interval=0.2, what="a Consul leader")

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()

    def leader(self) -> ClusterServer:
        """The server that is the leader now, as the live servers agree (waits up to 60 s for one)."""

        def agreed() -> ClusterServer | None:
            seen = {s.leader() for s in self.servers if s.alive()}
            if len(seen) != 1 or "" in seen:
                return None
            address = seen.pop()
            return next((s for s in self.servers if s.raft_address == address and s.alive()), None)

        return wait_until(agreed, 60, interval=0.1, what="a leader all live servers agree on")  # type: ignore[no-any-return]

    def followers(self) -> list[ClusterServer]:
        leader = self.leader()
        return [s for s in self.servers if s is not leader and s.alive()]
