#!/usr/bin/env python3
"""What open dashboards cost the watcher: change→applied with 0 and with 20 dashboards, side by side in one run.

One Consul dev agent; two HAProxies, each with its own ``disco watch --listen`` on the live path
(runtime API), the same but for one thing: the second has ``--dashboards`` Server-Sent Events
streams open on ``/events`` (as many browser tabs would), each read to the end of every message.
Changes alternate between the two (add an instance, remove it, ...), one at a time, 300 ms apart,
so both see the same machine; one instance of each service stays registered throughout (a removal
never empties a backend, which the sanity gate would hold).  Convergence is the time from the
Consul API call returning to HAProxy's runtime API showing the change (the new server ready, the
removed one draining), polled every 0.5 ms on the admin socket, as in bench/observe_overhead.py.

Also reported: how long after the Consul call the dashboards received a snapshot with the change
(every one of them), the bytes each received, and each watcher's CPU time.

Usage: .venv/bin/python bench/dashboard.py [--changes 60] [--dashboards 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.lib import summarize
from bench.observe_overhead import Balancer, measure
from testkit import ConsulAgent, take_port, wait_until


class Dashboard(threading.Thread):
    """One open page: reads ``/events`` and keeps (arrival time, payload) of every snapshot."""

    def __init__(self, host: str, port: int, stop: threading.Event) -> None:
        super().__init__(name="dashboard", daemon=True)
        self.host, self.port, self.stop = host, port, stop
        self.received: list[tuple[float, bytes]] = []
        self.bytes = 0
        self.connected = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        conn.request("GET", "/events")
        answer = conn.getresponse()
        assert answer.status == 200, answer.status
        self.connected.set()
        event = ""
        while not self.stop.is_set():
            line = answer.readline()
            if not line:
                return
            self.bytes += len(line)
            if line.startswith(b"event: "):
                event = line[7:].strip().decode()
            elif line.startswith(b"data: ") and event == "state":
                self.received.append((time.perf_counter(), line[6:]))
        conn.close()


def shown_at(dashboard: Dashboard, service: str, sid: str, added: bool, after: float) -> float | None:
    """When this dashboard first got a snapshot (after ``after``) in which HAProxy runs ``sid`` ready (added)
    or no longer ready (removed)."""
    for at, payload in dashboard.received:
        if at < after:
            continue
        data = json.loads(payload)
        svc = next((s for s in data["services"] if s["name"] == service), None)
        row = next((r for r in (svc or {}).get("servers", []) if r["name"] == sid), None)
        ready = row is not None and row["haproxy"] is not None and row["haproxy"]["state"] == "ready"
        if ready == added:
            return at
    return None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=60, help="changes per watcher (default 60)")
    parser.add_argument("--dashboards", type=int, default=20, help="open dashboards on the second (default 20)")
    args = parser.parse_args()
    plain_label, dash_label = "0 dashboards", f"{args.dashboards} dashboards"
    times: dict[str, list[float]] = {plain_label: [], dash_label: []}
    changes: list[tuple[float, str, bool]] = []  # the dashboards' watcher's: (API call returned, ID, added)
    with tempfile.TemporaryDirectory(prefix="disco-dashboard-") as tmp:
        work = Path(tmp)
        consul = ConsulAgent(work)
        consul.start()
        listen = {name: f"127.0.0.1:{take_port()}" for name in ("plain", "dash")}
        for service in ("plain", "dash"):
            consul.put(
                "/v1/agent/service/register",
                {"Name": service, "ID": f"{service}-base", "Address": "127.0.0.1", "Port": 19999},
            )
        plain = Balancer(work / "plain", consul, "plain", listen["plain"])
        dash = Balancer(work / "dash", consul, "dash", listen["dash"])
        stop = threading.Event()
        pages: list[Dashboard] = []
        try:
            for address in listen.values():
                wait_until(lambda a=address: _status(a, "/readyz") == 200, 20, what=f"the watcher on {address} ready")
            host, port = listen["dash"].split(":")
            pages = [Dashboard(host, int(port), stop) for _ in range(args.dashboards)]
            for page in pages:
                page.start()
                assert page.connected.wait(10), "a dashboard could not connect"
            wait_until(lambda: all(p.received for p in pages), 10, what="every dashboard's first snapshot")
            cpu_before = {b.service: cpu_seconds(b.procs[-1].popen.pid) for b in (plain, dash)}
            for n in range(args.changes):
                for label, balancer in ((plain_label, plain), (dash_label, dash)):
                    seconds = measure(consul, balancer, n)
                    times[label].append(seconds)
                    if balancer is dash:  # when the API call returned, as measure() counts
                        changes.append((time.perf_counter() - seconds, f"dash-{n // 2}", n % 2 == 0))
                    time.sleep(0.3)
            cpu = {b.service: cpu_seconds(b.procs[-1].popen.pid) - cpu_before[b.service] for b in (plain, dash)}
            time.sleep(0.5)
        finally:
            stop.set()
            plain.close()
            dash.close()
            consul.stop()
    delivered = []
    for started, sid, added in changes:
        seen = [shown_at(p, "dash", sid, added, started) for p in pages]
        if all(s is not None for s in seen):
            delivered.append(max(s for s in seen if s is not None) - started)
    print(f"{args.changes} changes per watcher (add, remove, alternating), live path, both with --listen, one run\n")
    print("change → applied (Consul API call returned → HAProxy's runtime API shows it)\n")
    print("| watcher | n | p50 ms | p95 ms | p99 ms | max ms | watcher CPU s |\n|---|---:|---:|---:|---:|---:|---:|")
    for (label, values), service in zip(times.items(), ("plain", "dash"), strict=True):
        s = summarize(values)
        print(
            f"| {label} | {s['n']} | {s['p50']:.1f} | {s['p95']:.1f} | {s['p99']:.1f} | {s['max']:.1f} "
            f"| {cpu[service]:.2f} |"
        )
    if delivered:
        s = summarize(delivered)
        print(
            f"\nchange → on all {args.dashboards} dashboards (the last one to get it): n={s['n']} "
            f"p50 {s['p50']:.1f} ms, p95 {s['p95']:.1f} ms, max {s['max']:.1f} ms "
            f"({len(changes) - len(delivered)} changes not matched)"
        )
    print(f"bytes per dashboard over the run: {sum(p.bytes for p in pages) // max(1, len(pages)):,}")
    return 0


def _status(address: str, path: str) -> int:
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
