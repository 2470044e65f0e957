#!/usr/bin/env python3
"""Scale: disco watch with 100, 1,000, 10,000 and 50,000 instances across 10, 100, 500 and 2,500 services.

For each size, on a fresh single Consul server and HAProxy 2.6, with `disco watch`
(live apply, default watch mode: one blocking query per service up to 8
services, the catalog-wide watch above):

- time from one change in Consul (an instance registered, then deregistered) to
  the moment HAProxy's runtime API shows it, p50 and max over the changes;
- the watcher's CPU time and peak RSS (from /proc);
- requests per second the watcher makes to Consul while idle and during churn
  (its own count, read through SIGUSR1), and the blocking queries it keeps open;
- HAProxy's own cost at that size, with the watcher stopped, on the config it
  rendered: ``haproxy -c`` (parse and check, wall time, median of 3) and a
  master-worker reload (``reload`` on the master CLI until a worker with a new PID
  answers ``show info`` on the admin socket, i.e. the new worker has parsed the
  config, started and accepts; median and max of 3).  Neither includes disco.

Instances are placeholders (passing checks; addresses in 127.1.0.0/16 that
nothing listens on, with no HAProxy health checks), so no traffic goes to them.
They are written straight into the catalog (``/v1/txn``, 30 instances a
transaction, on nodes of 250), not through the agent: the agent's local state
makes each agent registration cost O(instances) (10,000 took 5 minutes), and
what the watcher sees (``/v1/health/...``) is the same.  The moving instances
of the churn phase are registered through the agent, as a service would be.
Consul runs as production runs a server (``-server -bootstrap-expect 1``, Raft on disk), not
as a dev agent (``--consul dev``): a dev agent indents every answer, which at these sizes
doubles the bytes of ``/v1/health/state/any`` (3.7 vs 2.3 MB at 10,000 checks) and the time
Consul takes to send it (124 vs 55 ms here).
Usage: .venv/bin/python bench/scale.py [--sizes 100:10 1000:100 10000:500 50000:2500] [--idle 60] [--consul server|dev]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import statistics
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

from bench.budget import read_timelines, split
from bench.budget import table as budget_table
from bench.lib import draw, phase, require_tools, summarize, write_json
from discovery.errors import HAProxyUnavailable, ReloadError
from discovery.haproxy.master import socket_command
from discovery.haproxy.runtime import RuntimeAPI
from testkit import DISCO, ConsulAgent, Proc, take_port, wait_until

TEMPLATE = REPO / "bench/templates/scale.cfg.j2"
MODES = ("auto", "service", "catalog")


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


BATCH = 30  # instances per /v1/txn: two operations each (service, check), Consul 1.8 allows 64
PER_NODE = 250  # placeholder instances per catalog node


def register_all(consul: ConsulAgent, instances: int, services: int, progress: Callable[[int], None]) -> None:
    """Write the placeholder instances into the catalog, in transactions of ``BATCH``, four at a time."""
    session = requests.Session()

    def batch(lo: int) -> int:
        hi = min(instances, lo + BATCH)
        ops: list[dict[str, object]] = [
            {"Node": {"Verb": "set", "Node": {"Node": f"scale-{n}", "Address": f"127.1.{n}.1"}}}
            for n in sorted({i // PER_NODE for i in range(lo, hi)})
        ]
        for i in range(lo, hi):
            sid, node = f"i{i}", f"scale-{i // PER_NODE}"
            address = f"127.1.{i // PER_NODE}.{i % PER_NODE + 1}"
            ops.append(
                {
                    "Service": {
                        "Verb": "set",
                        "Node": node,
                        "Service": {
                            "Service": f"svc{i % services}",
                            "ID": sid,
                            "Address": address,
                            "Port": 8000 + i % 1000,
                        },
                    }
                }
            )
            ops.append(
                {
                    "Check": {
                        "Verb": "set",
                        "Check": {
                            "Node": node,
                            "CheckID": f"service:{sid}",
                            "Name": "placeholder",
                            "Status": "passing",
                            "ServiceID": sid,
                        },
                    }
                }
            )
        response = session.put(f"{consul.url}/v1/txn", json=ops, timeout=60)
        assert response.status_code == 200, response.text[:500]
        return hi - lo

    done = 0
    with ThreadPoolExecutor(4) as pool:
        for n in pool.map(batch, range(0, instances, BATCH)):
            done += n
            progress(done)


def churn(
    consul: ConsulAgent,
    api: RuntimeAPI,
    services: int,
    changes: int,
    applied: list[float],
    progress: Callable[[int], None],
    budget: float = float("inf"),
    deadline: float = 30.0,
    record: list[tuple[float, float]] | None = None,
) -> str | None:
    """Add then remove up to ``changes`` instances one at a time; append seconds from the Consul call to
    HAProxy's view.  No new instance once ``budget`` seconds have gone; a change HAProxy does not show
    within ``deadline`` seconds ends the phase: returns what timed out (None when nothing did)."""
    start = time.perf_counter()
    for c in range(changes):
        if time.perf_counter() - start > budget:
            break
        service, sid = f"svc{c % services}", f"moving{c}"
        body = {
            "Name": service,
            "ID": sid,
            "Address": "127.2.0.1",
            "Port": 9000 + c,
            "Check": {"CheckID": f"service:{sid}", "TTL": "24h", "Status": "passing"},
        }
        try:
            t = time.perf_counter()
            consul.put("/v1/agent/service/register", body)
            wait_until(lambda: sid in api.servers(service), deadline, interval=0.002, what=f"{sid} added")
            applied.append(time.perf_counter() - t)
            if record is not None:
                record.append((t, applied[-1]))
            t = time.perf_counter()
            consul.put(f"/v1/agent/service/deregister/{sid}")
            wait_until(
                lambda: api.servers(service).get(sid) is None or api.servers(service)[sid].draining,
                deadline,
                interval=0.002,
                what=f"{sid} removed",
            )
            applied.append(time.perf_counter() - t)
            if record is not None:
                record.append((t, applied[-1]))
        except AssertionError as exc:
            return str(exc)
        progress(c + 1)
    return None


def summary(applied: list[float]) -> dict[str, float]:
    nan = float("nan")
    return summarize(applied) if applied else {"n": 0, "p50": nan, "p95": nan, "p99": nan, "max": nan, "mean": nan}


def worker_pid(admin: Path) -> int | None:
    """The PID of the worker answering on the admin socket, None while none does."""
    try:
        answer = socket_command(admin, "show info", timeout=5)
    except (HAProxyUnavailable, ReloadError):
        return None
    m = re.search(r"^Pid: (\d+)", answer, re.M)
    return int(m.group(1)) if m else None


def haproxy_costs(
    cfg: Path, master: Path, admin: Path, progress: Callable[[int], None], times: int = 3, timeout: float = 120.0
) -> dict[str, object]:
    """HAProxy's own time at this size (the watcher stopped): ``haproxy -c`` and a master-worker reload."""
    checks, reloads = [], []
    for n in range(times):
        t = time.perf_counter()
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg)], capture_output=True, text=True, timeout=timeout)
        checks.append(time.perf_counter() - t)
        assert check.returncode == 0, check.stderr[-2000:]
        before = worker_pid(admin)
        t = time.perf_counter()
        with contextlib.suppress(ReloadError):  # the master re-executes itself and may drop the connection
            socket_command(master, "reload", timeout=5)
        try:
            wait_until(
                lambda: (pid := worker_pid(admin)) is not None and pid != before,
                timeout,
                interval=0.005,
                what="a new worker answering after the reload",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; show proc: {socket_command(master, 'show proc', timeout=5)!r}") from None
        reloads.append(time.perf_counter() - t)
        progress(n + 1)
    return {
        "haproxy_check_s": statistics.median(checks),
        "haproxy_reload_s": statistics.median(reloads),
        "haproxy_reload_max_s": max(reloads),
    }


def run_size(
    instances: int,
    services: int,
    idle: float,
    changes: int,
    budget: float,
    consul_mode: str = "server",
    watch_mode: str = "auto",
) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="disco-scale-"))
    # One blocking query per service needs as many connections: Consul's limit per client (200) is raised for it.
    extra = {"limits": {"http_max_conns_per_client": services + 100}} if watch_mode == "service" else None
    consul = ConsulAgent(work, dev=consul_mode == "dev", extra=extra)
    consul.start()
    procs: list[Proc] = []
    try:
        t = time.perf_counter()
        with phase(f"{instances} instances, {services} services: registering instances", instances) as report:
            register_all(consul, instances, services, report)
        registered_in = time.perf_counter() - t
        cfg, master, admin = work / "haproxy.cfg", work / "master.sock", work / "admin.sock"
        args = [
            *DISCO,
            "watch",
            "--output",
            str(cfg),
            "--template",
            str(TEMPLATE),
            "--consul-addr",
            consul.url,
            "--set",
            f"frontend_port={take_port()}",
            "--runtime-socket",
            str(admin),
            "--watch-mode",
            watch_mode,
        ]
        for n in range(services):
            args += ["--service", f"svc{n}"]
        slow = max(1.0, instances / 10000)  # the timeouts of one-off steps grow with the size
        label = f"{instances} instances, {services} services"
        t = time.perf_counter()
        # HAProxy starts on a config with every backend and no server (--bootstrap: `watch --once` gives up
        # when Consul has not answered for every service within 30 s, which 2,500 services take here);
        # the watcher's first pass then fetches, renders and applies every instance.
        with phase(f"{label}: bootstrap config (no instances)", 1) as report:
            once = subprocess.run([*args, "--once", "--bootstrap"], capture_output=True, text=True, timeout=60)
            assert once.returncode == 0, once.stderr[-2000:]
            report(1)
        bootstrap = time.perf_counter() - t
        procs.append(Proc(["haproxy", "-W", "-S", str(master), "-f", str(cfg)], work / "haproxy.log"))
        t = time.perf_counter()
        with phase(f"{label}: HAProxy starting", 1) as report:
            wait_until(lambda: worker_pid(admin) is not None, 60 * slow, what="HAProxy admin socket")
            report(1)
        haproxy_start = time.perf_counter() - t
        # --verbose: one timeline line per pass, for the latency budget (bench/budget.py)
        watch = Proc([*args, "--master-socket", str(master), "--verbose"], work / "watch.log")
        procs.append(watch)
        t = time.perf_counter()
        with phase(f"{label}: disco watch, first pass (fetch, render, apply every instance)", 1) as report:
            wait_until(lambda: "applied" in watch.output(), 300 * slow, interval=0.1, what="first apply")
            report(1)
        first_apply = time.perf_counter() - t
        api = RuntimeAPI(admin, timeout=10)

        time.sleep(1.0)  # let the first apply's validation settle
        req0, queries = stats(watch)
        cpu_i0, _ = proc_figures(watch.popen.pid)
        t0 = time.perf_counter()
        with phase(f"{label}: idle seconds", round(idle)) as report:
            while (elapsed := time.perf_counter() - t0) < idle:  # the measurement is of an idle watcher
                report(int(elapsed))
                time.sleep(min(1.0, idle - elapsed))
            report(round(idle))
        req1, _ = stats(watch)
        cpu_i1, _ = proc_figures(watch.popen.pid)
        idle_elapsed = time.perf_counter() - t0
        idle_rps = (req1 - req0) / idle_elapsed

        cpu_a, _ = proc_figures(watch.popen.pid)
        applied: list[float] = []
        recorded: list[tuple[float, float]] = []
        t_churn = time.perf_counter()
        with phase(f"{label}: instances added and removed", changes) as report:
            timed_out = churn(
                consul, api, services, changes, applied, report, budget, deadline=30 * slow, record=recorded
            )
        if timed_out:
            print(f"bench: {label}: {timed_out}", file=sys.stderr)
        churn_seconds = time.perf_counter() - t_churn
        req2, _ = stats(watch)
        cpu_b, peak = proc_figures(watch.popen.pid)
        watch.stop()
        stages = split(recorded, read_timelines(watch.log))
        with phase(f"{label}: haproxy -c and reload, watcher stopped", 3) as report:
            try:
                costs: dict[str, object] = haproxy_costs(cfg, master, admin, report, timeout=120 * slow)
            except AssertionError as exc:  # keep the watcher's figures
                print(f"bench: {label}: {exc}", file=sys.stderr)
                costs = {"haproxy_failed": str(exc)}
    finally:
        for proc in reversed(procs):
            proc.stop()
        consul.stop()
    return {
        "instances": instances,
        "services": services,
        "consul": consul_mode,
        "watch_mode": watch_mode,
        "registered_in_s": registered_in,
        "bootstrap_s": bootstrap,
        "haproxy_start_s": haproxy_start,
        "first_apply_s": first_apply,
        "change_timed_out": timed_out,
        "config_bytes": cfg.stat().st_size,
        **costs,
        "change_to_applied_ms": summary(applied),
        "blocking_queries": queries,
        "blocking_queries_one_per_service": services,
        "idle_requests_per_s": idle_rps,
        "churn_requests_per_s": (req2 - req1) / churn_seconds,
        "churn_changes_per_s": len(applied) / churn_seconds,
        "cpu_idle_percent": 100 * (cpu_i1 - cpu_i0) / idle_elapsed,
        "cpu_per_change_ms": 1000 * (cpu_b - cpu_a) / max(1, len(applied)),
        "peak_rss_mb": peak,
        "idle_seconds": idle,
        "budget_ms": {stage: summarize(v) for stage, v in stages.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        nargs="*",
        default=["100:10", "1000:100", "10000:500", "10000:500:service", "50000:2500"],
        help="INSTANCES:SERVICES[:WATCH_MODE]; the mode defaults to --watch-mode",
    )
    parser.add_argument("--idle", type=float, default=60.0, help="idle seconds measured at the largest size")
    parser.add_argument("--idle-small", type=float, default=15.0, help="idle seconds at the other sizes")
    parser.add_argument("--changes", type=int, default=20, help="instances added and removed at each size")
    parser.add_argument(
        "--churn-budget",
        type=float,
        default=180.0,
        help="no new instance after this many seconds of churn at one size (the largest is slow)",
    )
    parser.add_argument(
        "--consul",
        choices=("server", "dev"),
        default="server",
        help="a single Consul server (as in production) or a dev agent (indents every answer)",
    )
    parser.add_argument(
        "--watch-mode",
        choices=MODES,
        default="auto",
        help="disco watch --watch-mode (service: Consul's connection limit per client is raised)",
    )
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/scale.json")
    parser.add_argument("--png", type=Path, default=REPO / "docs/img/scale.png", help="the plot drawn at the end")
    args = parser.parse_args()
    require_tools("haproxy", "consul")
    rows = []
    for n, size in enumerate(args.sizes):
        count, services_count, *mode = size.split(":")
        if mode and mode[0] not in MODES:
            parser.error(f"--sizes {size}: the watch mode is one of {', '.join(MODES)}")
        idle = args.idle if n == len(args.sizes) - 1 else args.idle_small
        rows.append(
            run_size(
                int(count),
                int(services_count),
                idle,
                args.changes,
                args.churn_budget,
                args.consul,
                mode[0] if mode else args.watch_mode,
            )
        )
    print(table(rows))
    print(
        "\nLatency budget (ms per change; bench/budget.py; probe: the runtime API polled every 2 ms):\n"
        + budget_table({size_label(r): r.get("budget_ms", {}) for r in rows}, digits=1)
    )
    write_json(args.json, rows)
    draw("plot_scale", args.json, args.png)
    return 0


def table(rows: list[dict]) -> str:
    """Two markdown tables: the watcher's figures, then the one-off times at each size (HAProxy's own included)."""
    lines = [
        "| instances | services | watch | change→applied p50 ms | p99 ms | max ms (changes) | blocking queries (one per service) "
        "| Consul req/s idle | req/s in churn (changes/s) | watcher CPU ms/change | idle CPU % (over s) "
        "| watcher peak RSS MB |",
        "|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c = r["change_to_applied_ms"]
        lines.append(
            f"| {r['instances']} | {r['services']} | {watch_label(r)} | {c['p50']:.0f} | {c['p99']:.0f} | {c['max']:.0f} "
            f"({c['n']}) | "
            f"{r['blocking_queries']} ({r['blocking_queries_one_per_service']}) | "
            f"{r['idle_requests_per_s']:.2f} | {r['churn_requests_per_s']:.1f} "
            f"({r['churn_changes_per_s']:.1f}) | {r['cpu_per_change_ms']:.1f} | "
            f"{r['cpu_idle_percent']:.2f} ({r['idle_seconds']:.0f}) | {r['peak_rss_mb']:.0f} |"
        )
    lines += [
        "",
        "| instances | watch | registered in s | HAProxy start (no instances) s | first pass s | config MB "
        "| haproxy -c s | HAProxy reload s (max) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]

    def sec(r: dict, key: str, fmt: str = "{:.2f}") -> str:
        return fmt.format(r[key]) if isinstance(r.get(key), (int, float)) else "-"

    for r in rows:
        lines.append(
            f"| {r['instances']} | {watch_label(r)} | {sec(r, 'registered_in_s', '{:.1f}')} | "
            f"{sec(r, 'haproxy_start_s', '{:.1f}')} | {sec(r, 'first_apply_s', '{:.1f}')} | "
            f"{r.get('config_bytes', 0) / 1e6:.2f} | {sec(r, 'haproxy_check_s')} | "
            f"{sec(r, 'haproxy_reload_s')} ({sec(r, 'haproxy_reload_max_s')}) |"
        )
    for r in rows:
        for key in ("change_timed_out", "haproxy_failed"):
            if r.get(key):
                lines.append(f"\n{size_label(r)}: {r[key]}")
    return "\n".join(lines)


def watch_label(row: dict) -> str:
    """How the watcher followed Consul at that size: the catalog-wide watch, or one query per service."""
    mode = row.get("watch_mode", "auto")
    if mode == "auto":  # auto: one query per service up to 8 services, the catalog-wide watch above
        mode = "service" if row["services"] <= 8 else "catalog"
    return "per service" if mode == "service" else "catalog-wide"


def size_label(row: dict) -> str:
    """A size, and the watch mode when it was asked for (two rows of one size stay apart)."""
    mode = row.get("watch_mode", "auto")
    return f"{row['instances']}" + ("" if mode == "auto" else f" {watch_label(row)}")


if __name__ == "__main__":
    sys.exit(main())
