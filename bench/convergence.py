#!/usr/bin/env python3
"""Convergence: time from a change in Consul to the moment HAProxy routes accordingly.

Real parts only: a Consul dev agent, HAProxy in master-worker mode, `disco watch`
(as users run it) and webapps, all on 127.0.0.1.  Changes cycle through four kinds,
each made through Consul's agent API (the moment the API call returns is t0):

- add (register):        a new instance is registered     -> first request it answers
- remove (check fails):  its TTL check is set critical    -> last request it answers
- add (check passes):    its TTL check is set passing      -> first request it answers
- remove (deregister):   it is deregistered                -> last request it answers

The probe is an in-process HTTP/1.1 client on raw sockets, one fresh connection
per request (`Connection: close`, so every request meets the current worker);
its own cost per request is measured and printed.  A removal counts as done at
the last request the removed instance answered, once it has not been seen for a
quiet window of 300 ms.

Usage: .venv/bin/python bench/convergence.py [--changes 120] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.harness import DISCO, ConsulAgent, Proc, free_port, wait_until  # noqa: E402
from webapp.app import Server, make_server  # noqa: E402

QUIET = 0.3
DEADLINE = 10.0


def probe(port: int) -> str:
    """One request through the load balancer on a fresh connection; returns X-Instance."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "x-instance":
            return value.strip()
    return head.split("\r\n", 1)[0]


def serve(instance: str) -> tuple[Server, int]:
    server = make_server("127.0.0.1", 0, instance)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server, int(server.server_address[1])


def until_seen(lb: int, instance: str, t0: float) -> float:
    while time.perf_counter() - t0 < DEADLINE:
        if probe(lb) == instance:
            return time.perf_counter() - t0
    raise RuntimeError(f"{instance} never answered within {DEADLINE}s")


def until_gone(lb: int, instance: str, t0: float) -> float:
    last_hit = t0
    while time.perf_counter() - t0 < DEADLINE:
        now = time.perf_counter()
        if probe(lb) == instance:
            last_hit = now
        elif now - last_hit > QUIET:
            return last_hit - t0
    raise RuntimeError(f"{instance} still answered after {DEADLINE}s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=120, help="number of changes (a multiple of 4)")
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/convergence.json")
    args = parser.parse_args()

    import tempfile
    work = Path(tempfile.mkdtemp(prefix="disco-bench-"))
    consul = ConsulAgent(work)
    consul.start()
    procs: list[Proc] = []
    lb, stats = free_port(), free_port()
    try:
        servers = {name: serve(name) for name in ("base-1", "base-2", "base-3")}
        for name, (_, port) in servers.items():
            consul.put("/v1/agent/service/register", {"Name": "web", "ID": name, "Address": "127.0.0.1", "Port": port})
        _, spare_port = serve_spare = serve("moving")
        cfg, sock = work / "haproxy.cfg", work / "master.sock"
        watch = [*DISCO, "watch", "--service", "web", "--output", str(cfg), "--consul-addr", consul.url,
                 "--set", f"frontend_port={lb}", "--set", f"stats_port={stats}", "--set", "bind_address=127.0.0.1"]
        once = Proc([*watch, "--once"], work / "once.log")
        assert once.popen.wait(60) == 0, once.output()
        procs.append(Proc(["haproxy", "-W", "-S", str(sock), "-f", str(cfg)], work / "haproxy.log"))
        wait_until(sock.exists, 10, what="master socket")
        procs.append(Proc([*watch, "--master-socket", str(sock)], work / "watch.log"))
        wait_until(lambda: {probe(lb) for _ in range(6)} == {"base-1", "base-2", "base-3"}, 20, what="baseline")

        probe_cost = []
        for _ in range(200):
            t = time.perf_counter()
            probe(lb)
            probe_cost.append(time.perf_counter() - t)

        results: dict[str, list[float]] = {k: [] for k in ("add (register)", "remove (check fails)",
                                                          "add (check passes)", "remove (deregister)")}
        cycles = max(1, args.changes // 4)
        for cycle in range(cycles):
            # The spare server answers with a fixed X-Instance; give each cycle its own ID in Consul.
            sid = "moving"
            check = f"service:{sid}-{cycle}"
            body = {"Name": "web", "ID": f"{sid}-{cycle}", "Address": "127.0.0.1", "Port": spare_port,
                    "Check": {"CheckID": check, "TTL": "1h", "Status": "passing"}}
            t0 = time.perf_counter(); consul.put("/v1/agent/service/register", body)
            results["add (register)"].append(until_seen(lb, sid, t0))
            t0 = time.perf_counter(); consul.put(f"/v1/agent/check/fail/{check}")
            results["remove (check fails)"].append(until_gone(lb, sid, t0))
            t0 = time.perf_counter(); consul.put(f"/v1/agent/check/pass/{check}")
            results["add (check passes)"].append(until_seen(lb, sid, t0))
            t0 = time.perf_counter(); consul.put(f"/v1/agent/service/deregister/{sid}-{cycle}")
            results["remove (deregister)"].append(until_gone(lb, sid, t0))
            print(f"\rcycle {cycle + 1}/{cycles}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        serve_spare[0].shutdown()
    finally:
        for proc in reversed(procs):
            proc.stop()
        consul.stop()

    everything = [v for values in results.values() for v in values]
    rows = {**results, "all changes": everything}
    table = ["| change | n | p50 ms | p95 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|"]
    summary = {}
    for name, values in rows.items():
        ms = [v * 1000 for v in values]
        stat = {"n": len(ms), "p50": percentile(ms, 50), "p95": percentile(ms, 95), "p99": percentile(ms, 99),
                "max": max(ms), "mean": statistics.fmean(ms)}
        summary[name] = stat
        table.append(f"| {name} | {stat['n']} | {stat['p50']:.0f} | {stat['p95']:.0f} | {stat['p99']:.0f} | "
                     f"{stat['max']:.0f} |")
    cost_ms = statistics.median(probe_cost) * 1000
    print("\n".join(table))
    print(f"\nprobe client: {cost_ms:.2f} ms median per request through HAProxy (fresh connection each); "
          f"disco watch with reloads, default --wait 50ms:1s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"convergence_ms": summary, "probe_ms_median": cost_ms}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
