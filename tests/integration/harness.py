"""Real processes for integration tests: a Consul dev agent, HAProxy in master-worker mode,
webapps, and the `disco` commands themselves.  Every wait is bounded; every process is
stopped by the fixture that started it."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from discovery.consul.agent import consul_dev_config, find_consul, free_port

REPO = Path(__file__).resolve().parents[2]
DISCO = [sys.executable, "-m", "discovery.cli"]


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - polled service not up yet
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}: {last_exc}")


class Proc:
    """A child process in its own session, with its output in a log file."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.log = log
        self._fh = open(log, "ab")
        self.popen = subprocess.Popen(argv, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True,
                                      env={**os.environ, **(env or {})}, cwd=REPO)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(5)
        self._fh.close()
        return self.popen.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class ConsulAgent:
    """A single-node dev agent on free ports; restartable on the same ports."""

    def __init__(self, workdir: Path, dns: bool = False, extra: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        self.binary = find_consul(os.environ.get("DISCO_CONSUL_BIN"))
        self.http_port = free_port()
        self.dns_port = free_port() if dns else -1
        self.config = workdir / "consul.json"
        config = consul_dev_config(self.http_port, free_port(), free_port(), free_port(), self.dns_port)
        self.config.write_text(json.dumps({**config, **(extra or {})}))
        self.token = str((extra or {}).get("acl", {}).get("tokens", {}).get("master", ""))
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        self.proc = Proc([self.binary, "agent", "-dev", "-config-file", str(self.config)],
                         self.workdir / "consul.log")
        wait_until(lambda: requests.get(f"{self.url}/v1/status/leader", timeout=1).json(), 30,
                   what="a Consul leader")
        if self.token:  # ACLs: wait until the master token works
            wait_until(lambda: requests.get(f"{self.url}/v1/acl/token/self", timeout=1,
                                            headers=self.headers).status_code == 200, 30, what="ACLs ready")

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
        answer = requests.get(f"{self.url}/v1/health/service/{service}?passing=1", timeout=2,
                              headers=self.headers).json()
        return sorted(e["Service"]["ID"] for e in answer)

    def agent_services(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/v1/agent/services", timeout=2).json()

    def put(self, path: str, body: Any = None) -> Any:
        response = requests.put(f"{self.url}{path}", data=json.dumps(body) if body is not None else None,
                                timeout=2, headers=self.headers)
        response.raise_for_status()
        return response.json() if response.content else None


def instances_reached(url: str, requests_count: int = 30) -> collections.Counter[str]:
    """Which instances answered ``requests_count`` fresh requests through the load balancer."""
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(requests_count):
        response = requests.get(url, timeout=3, headers={"Connection": "close"})
        seen[response.headers.get("X-Instance", f"status {response.status_code}")] += 1
    return seen
