#!/usr/bin/env python3
"""Scale: disco watch with 100, 1,000 and 10,000 instances across 10, 100 and 500 services.

For each size, on a fresh Consul dev agent and HAProxy 2.6, with `disco watch`
(live apply, default watch mode: one blocking query per service up to 8
services, the catalog-wide watch above):

- time from one change in Consul (an instance registered, then deregistered) to
  the moment HAProxy's runtime API shows it, p50 and max over the changes;
- the watcher's CPU time and peak RSS (from /proc);
- requests per second the watcher makes to Consul while idle and during churn
  (its own count, read through SIGUSR1), and the blocking queries it keeps open.

Instances are placeholders (TTL checks, passing; addresses in 127.1.0.0/16 that
nothing listens on, with no HAProxy health checks), so no traffic goes to them.
Usage: .venv/bin/python bench/scale.py [--sizes 100:10 1000:100 10000:500] [--idle 60]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.lib import phase, require_tools, summarize, write_json  # noqa: E402
from discovery.haproxy.runtime import RuntimeAPI  # noqa: E402
from testkit import DISCO, ConsulAgent, Proc, take_port, wait_until  # noqa: E402

TEMPLATE = REPO / "bench/templates/scale.cfg.j2"


def proc_figures(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS in MB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return cpu, int(hwm.group(1)) / 1024 if hwm else 0.0


def stats(watch: Proc) -> tuple[int, int]:
    """Ask the watcher for its stats line; return (requests to Consul, blocking queries open)."""
    before = watch.output().count("stats:")
    watch.popen.send_signal(signal.SIGUSR1)
    wait_until(lambda: watch.output().count("stats:") > before, 10, interval=0.02, what="stats line")
    line = watch.output().rsplit("stats:", 1)[1]
    m = re.match(r" (\d+) requests to Consul, (\d+) blocking queries", line)
    assert m, line
    return int(m.group(1)), int(m.group(2))


def register_all(consul: ConsulAgent, instances: int, services: int, progress: Callable[[int], None]) -> None:
    session = requests.Session()

    def one(i: int) -> None:
        sid = f"i{i}"
        body = {"Name": f"svc{i % services}", "ID": sid, "Address": f"127.1.{i // 250}.{i % 250 + 1}",
                "Port": 8000 + i % 1000, "Check": {"CheckID": f"service:{sid}", "TTL": "24h", "Status": "passing"}}
        session.put(f"{consul.url}/v1/agent/service/register", json=body, timeout=10).raise_for_status()

    with ThreadPoolExecutor(4) as pool:
        for done, _ in enumerate(pool.map(one, range(instances)), 1):
            progress(done)


def churn(consul: ConsulAgent, api: RuntimeAPI, services: int, changes: int, applied: list[float],
          progress: Callable[[int], None]) -> None:
    """Add then remove ``changes`` instances one at a time; append seconds from the Consul call to HAProxy's view."""
    for c in range(changes):
        service, sid = f"svc{c % services}", f"moving{c}"
        body = {"Name": service, "ID": sid, "Address": "127.2.0.1", "Port": 9000 + c,
                "Check": {"CheckID": f"service:{sid}", "TTL": "24h", "Status": "passing"}}
        t = time.perf_counter()
        consul.put("/v1/agent/service/register", body)
        wait_until(lambda: sid in api.servers(service), 30, interval=0.002, what=f"{sid} added")
        applied.append(time.perf_counter() - t)
        t = time.perf_counter()
        consul.put(f"/v1/agent/service/deregister/{sid}")
        wait_until(lambda: api.servers(service).get(sid) is None or api.servers(service)[sid].draining, 30,
                   interval=0.002, what=f"{sid} removed")
        applied.append(time.perf_counter() - t)
        progress(c + 1)


def run_size(instances: int, services: int, idle: float, changes: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="disco-scale-"))
    consul = ConsulAgent(work)
    consul.start()
    procs: list[Proc] = []
    try:
        t = time.perf_counter()
        with phase(f"{instances} instances, {services} services: registering instances", instances) as report:
            register_all(consul, instances, services, report)
        registered_in = time.perf_counter() - t
        cfg, master, admin = work / "haproxy.cfg", work / "master.sock", work / "admin.sock"
        args = [*DISCO, "watch", "--output", str(cfg), "--template", str(TEMPLATE), "--consul-addr", consul.url,
                "--set", f"frontend_port={take_port()}", "--runtime-socket", str(admin)]
        for n in range(services):
            args += ["--service", f"svc{n}"]
        t = time.perf_counter()
        once = subprocess.run([*args, "--once"], capture_output=True, text=True, timeout=300)
        assert once.returncode == 0, once.stderr[-2000:]
        first_render = time.perf_counter() - t
        procs.append(Proc(["haproxy", "-W", "-S", str(master), "-f", str(cfg)], work / "haproxy.log"))
        wait_until(admin.exists, 60, what="HAProxy admin socket")
        watch = Proc([*args, "--master-socket", str(master)], work / "watch.log")
        procs.append(watch)
        wait_until(lambda: "applied" in watch.output(), 120, interval=0.1, what="first apply")
        api = RuntimeAPI(admin, timeout=10)

        time.sleep(1.0)  # let the first apply's validation settle
        req0, queries = stats(watch)
        cpu_i0, _ = proc_figures(watch.popen.pid)
        t0 = time.perf_counter()
        with phase(f"{instances} instances, {services} services: idle seconds", round(idle)) as report:
            while (elapsed := time.perf_counter() - t0) < idle:  # the measurement is of an idle watcher
                report(int(elapsed))
                time.sleep(min(1.0, idle - elapsed))
            report(round(idle))
        req1, _ = stats(watch)
        cpu_i1, _ = proc_figures(watch.popen.pid)
        idle_elapsed = time.perf_counter() - t0
        idle_rps = (req1 - req0) / idle_elapsed

        cpu_a, _ = proc_figures(watch.popen.pid)
        applied = []
        t_churn = time.perf_counter()
        with phase(f"{instances} instances, {services} services: instances added and removed", changes) as report:
            churn(consul, api, services, changes, applied, report)
        churn_seconds = time.perf_counter() - t_churn
        req2, _ = stats(watch)
        cpu_b, peak = proc_figures(watch.popen.pid)
    finally:
        for proc in reversed(procs):
            proc.stop()
        consul.stop()
    return {"instances": instances, "services": services, "registered_in_s": registered_in,
            "first_render_s": first_render, "change_to_applied_ms": summarize(applied),
            "blocking_queries": queries, "blocking_queries_one_per_service": services,
            "idle_requests_per_s": idle_rps, "churn_requests_per_s": (req2 - req1) / churn_seconds,
            "churn_changes_per_s": len(applied) / churn_seconds,
            "cpu_idle_percent": 100 * (cpu_i1 - cpu_i0) / idle_elapsed,
            "cpu_per_change_ms": 1000 * (cpu_b - cpu_a) / len(applied), "peak_rss_mb": peak,
            "idle_seconds": idle}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="*", default=["100:10", "1000:100", "10000:500"])
    parser.add_argument("--idle", type=float, default=60.0, help="idle seconds measured at the largest size")
    parser.add_argument("--idle-small", type=float, default=15.0, help="idle seconds at the other sizes")
    parser.add_argument("--changes", type=int, default=20, help="instances added and removed at each size")
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/scale.json")
    args = parser.parse_args()
    require_tools("haproxy", "consul")
    rows = []
    for n, size in enumerate(args.sizes):
        instances, services = (int(x) for x in size.split(":"))
        idle = args.idle if n == len(args.sizes) - 1 else args.idle_small
        rows.append(run_size(instances, services, idle, args.changes))
    print("| instances | services | change→applied p50 ms | max ms | blocking queries (one per service) "
          "| Consul req/s idle | req/s in churn (changes/s) | watcher CPU ms/change | idle CPU % (over s) "
          "| peak RSS MB |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        c = r["change_to_applied_ms"]
        print(f"| {r['instances']} | {r['services']} | {c['p50']:.0f} | {c['max']:.0f} | {r['blocking_queries']} "
              f"({r['blocking_queries_one_per_service']}) | {r['idle_requests_per_s']:.2f} | "
              f"{r['churn_requests_per_s']:.1f} ({r['churn_changes_per_s']:.1f}) | {r['cpu_per_change_ms']:.1f} | "
              f"{r['cpu_idle_percent']:.2f} ({r['idle_seconds']:.0f}) | {r['peak_rss_mb']:.0f} |")
    write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
