"""Shared pieces of the benchmarks: the probe client, webapp servers, change driver, statistics."""

from __future__ import annotations

import json
import re
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from testkit import ConsulAgent
from webapp.app import Server, make_server

QUIET = 0.3      # a removal is done once the instance has not answered for this long
PACE = 0.25      # at most one change every 250 ms, the same for every contender
DEADLINE = 15.0  # give up on one change after this long


def probe(port: int) -> str:
    """One request through the load balancer on a fresh connection; returns X-Instance (or the status line)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError as exc:
        return f"error: {exc.__class__.__name__}"
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "x-instance":
            return value.strip()
    return head.split("\r\n", 1)[0]


def probe_cost(port: int, n: int = 200) -> float:
    """Median seconds per probe, to report the client's own overhead."""
    costs = []
    for _ in range(n):
        t = time.perf_counter()
        probe(port)
        costs.append(time.perf_counter() - t)
    return statistics.median(costs)


def serve(instance: str, address: str = "127.0.0.1") -> tuple[Server, int]:
    """A webapp in a thread.  Each instance gets its own loopback address (127.0.0.N), as
    containers have their own IPs; HAProxy 2.6's DNS discovery cannot tell apart SRV records
    that share a target host name, and Consul names targets after the address."""
    server = make_server(address, 0, instance)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server, int(server.server_address[1])


def until_seen(lb: int, instance: str, t0: float) -> float:
    while time.perf_counter() - t0 < DEADLINE:
        if probe(lb) == instance:
            return time.perf_counter() - t0
    raise TimeoutError(f"{instance} never answered within {DEADLINE}s")


def until_gone(lb: int, instance: str, t0: float) -> float:
    last_hit = t0
    while time.perf_counter() - t0 < DEADLINE:
        now = time.perf_counter()
        if probe(lb) == instance:
            last_hit = now
        elif now - last_hit > QUIET:
            return last_hit - t0
    raise TimeoutError(f"{instance} still answered after {DEADLINE}s")


KINDS = ("add (register)", "remove (check fails)", "add (check passes)", "remove (deregister)")


MOVING_ADDRESS = "127.0.0.9"


def drive_changes(consul: ConsulAgent, lb: int, spare_port: int, changes: int,
                  progress: Callable[[int], None] = lambda n: None) -> dict[str, list[float]]:
    """Cycle the four kinds of change on one instance ("moving"); return seconds per change, by kind."""
    results: dict[str, list[float]] = {k: [] for k in KINDS}
    for cycle in range(max(1, changes // 4)):
        sid = f"moving-{cycle}"
        check = f"service:{sid}"
        body = {"Name": "web", "ID": sid, "Address": MOVING_ADDRESS, "Port": spare_port,
                "Check": {"CheckID": check, "TTL": "1h", "Status": "passing"}}
        steps: list[tuple[str, Callable[[], None], Callable[[int, str, float], float]]] = [
            (KINDS[0], lambda: consul.put("/v1/agent/service/register", body), until_seen),
            (KINDS[1], lambda: consul.put(f"/v1/agent/check/fail/{check}"), until_gone),
            (KINDS[2], lambda: consul.put(f"/v1/agent/check/pass/{check}"), until_seen),
            (KINDS[3], lambda: consul.put(f"/v1/agent/service/deregister/{sid}"), until_gone),
        ]
        for kind, act, wait in steps:
            t0 = time.perf_counter()
            act()
            results[kind].append(wait(lb, "moving", t0))
            rest = PACE - (time.perf_counter() - t0)
            if rest > 0:
                time.sleep(rest)
        progress(4 * (cycle + 1))
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def summarize(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "p50": percentile(ms, 50), "p95": percentile(ms, 95), "p99": percentile(ms, 99),
            "max": max(ms), "mean": statistics.fmean(ms)}


@dataclass
class Load:
    """wrk through the load balancer, fresh connection per request, bounded in time; stopped early with SIGINT."""

    port: int
    seconds: int = 600
    connections: int = 8
    proc: subprocess.Popen[str] | None = None
    result: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["wrk", "-t1", f"-c{self.connections}", f"-d{self.seconds}s", "--latency", "-H", "Connection: close",
             f"http://127.0.0.1:{self.port}/"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def stop(self) -> dict[str, float]:
        assert self.proc is not None
        self.proc.send_signal(2)
        out, _ = self.proc.communicate(timeout=30)
        self.result = parse_wrk(out)
        return self.result


def parse_wrk(out: str) -> dict[str, float]:
    def num(pattern: str) -> float:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else 0.0
    socket_errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return {"requests": num(r"(\d+) requests in"), "seconds": num(r"requests in ([\d.]+)s"),
            "rps": num(r"Requests/sec:\s+([\d.]+)"), "non_2xx": num(r"Non-2xx or 3xx responses: (\d+)"),
            "socket_errors": float(socket_errors)}


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
