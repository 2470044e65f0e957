"""A real Consul dev agent on reserved ports, for tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import requests

from discovery.consul.agent import consul_dev_config, find_consul

from .ports import take_port
from .procs import Proc, wait_until

__all__ = ["ConsulAgent"]


class ConsulAgent:
    """A single-node dev agent on reserved ports (HTTP, serf LAN/WAN, server; DNS if asked);
    restartable on the same ports.

    With ``dev=False`` it is a single server as production runs one (``-server
    -bootstrap-expect 1`` with a data directory): Raft on disk, and compact JSON answers (a
    dev agent indents every answer, which doubles the bytes of a big one)."""

    def __init__(self, workdir: Path, dns: bool = False, extra: dict[str, Any] | None = None, dev: bool = True) -> None:
        self.workdir = workdir
        self.dev = dev
        self.binary = find_consul(os.environ.get("DISCO_CONSUL_BIN"))
        self.http_port = take_port()
        self.dns_port = take_port() if dns else -1
        self.config = workdir / "consul.json"
        config = consul_dev_config(self.http_port, take_port(), take_port(), take_port(), self.dns_port)
        self.config.write_text(json.dumps({**config, **(extra or {})}))
        self.token = str((extra or {}).get("acl", {}).get("tokens", {}).get("master", ""))
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        mode = (
            ["-dev"]
            if self.dev
            else ["-server", "-bootstrap-expect", "1", "-data-dir", str(self.workdir / "consul-data")]
        )
        self.proc = Proc([self.binary, "agent", *mode, "-config-file", str(self.config)], self.workdir / "consul.log")
        wait_until(lambda: requests.get(f"{self.url}/v1/status/leader", timeout=1).json(), 30, what="a Consul leader")
        if self.token:  # ACLs: wait until the master token works
            wait_until(
                lambda: (
                    requests.get(f"{self.url}/v1/acl/token/self", timeout=1, headers=self.headers).status_code == 200
                ),
                30,
                what="ACLs ready",
            )

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Consul-Token": self.token} if self.token else {}

    def stop(self, kill: bool = False) -> None:
        """Stop the agent (SIGTERM), or with ``kill`` SIGKILL it, as a crash would."""
        if self.proc is not None:
            if kill:
                self.proc.signal(signal.SIGKILL)
            self.proc.stop()
            self.proc = None

    def passing(self, service: str) -> list[str]:
        answer = requests.get(
            f"{self.url}/v1/health/service/{service}?passing=1", timeout=2, headers=self.headers
        ).json()
        return sorted(e["Service"]["ID"] for e in answer)

    def agent_services(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/v1/agent/services", timeout=2, headers=self.headers).json()

    def put(self, path: str, body: Any = None) -> Any:
        response = requests.put(
            f"{self.url}{path}", data=json.dumps(body) if body is not None else None, timeout=2, headers=self.headers
        )
        response.raise_for_status()
        return response.json() if response.content else None
