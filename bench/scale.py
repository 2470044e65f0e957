#!/usr/bin/env python3
"""Scale: disco watch with 100, 1,000, 10,000 and 50,000 instances across 10, 100, 500 and 2,500 services.

For each size, on a fresh single Consul server, a Consul client agent joined to it (as in
production: disco runs beside a client agent, with its connection limit per client raised as
the image's consul/client.hcl does; ``--no-agent``: disco talks to the server) and HAProxy 2.6,
with `disco watch` (live apply, default watch mode: auto, which chooses one long poll per
service when they fit under the agent's limit, the catalog-wide watch otherwise):

- time from one change in Consul (an instance registered, then deregistered; on the client
  agent's node and on a node new to the catalog in turn) to the moment HAProxy's runtime API
  shows it, read by a probe stream of its own (bench/lib.py ProbeStream, every 2 ms, in a
  process of its own, so a change live while its API call is in flight is timed as such);
  adds and removals p50 and p99, apart and together; one change every PACE (100 ms) at most, so
  that the quiescence timer (--wait) does not take two changes for one burst;
- Consul's CPU per change (the server and the client agent);
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
Each size is measured twice by default, in the same run: with the default watch of this
version (``auto``) and with the default of 0.1.0 (``--watch-mode catalog``, the catalog-wide
watch), and a last table puts the two side by side, with issue 20's targets.  The largest size,
172,000 instances / 10,000 services (the Consul Global Scale Benchmark's), is measured with the
default watch only and ``--quick`` (on by default; said so in the tables).

Usage: .venv/bin/python bench/scale.py [--sizes 100:10 1000:100:catalog ...] [--idle 60] [--consul server|dev]
       [--no-agent] [--no-quick: sizes of 100,000 instances and more measured in full, not with 10 changes,
       5 s idle and no HAProxy timing]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
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
from bench.lib import ProbeStream, draw, phase, require_tools, summarize, write_json
from discovery.consul.agent import find_consul
from discovery.errors import HAProxyUnavailable, ReloadError
from discovery.haproxy.master import socket_command
from discovery.haproxy.runtime import RuntimeAPI
from testkit import DISCO, ConsulAgent, Proc, take_port, wait_until

TEMPLATE = REPO / "bench/templates/scale.cfg.j2"
#: Seconds from one change's API call to the next (bench/compare.py waits 250 ms).
PACE = 0.1
#: --quick: sizes from this many instances get fewer changes and idle seconds, and no HAProxy timing.
QUICK_FROM, QUICK_CHANGES, QUICK_IDLE = 100_000, 10, 5.0
#: Sizes from this many instances are watched idle for --idle seconds, the others for --idle-small.
IDLE_FROM = 50_000
#: Issue 20's targets: (instances, services) -> the most each figure may be.
TARGETS = {
    (10_000, 500): {"p99 ms": 40.0, "CPU ms/change": 10.0},
    (50_000, 2_500): {"p99 ms": 60.0, "CPU ms/change": 10.0, "first pass s": 10.0, "peak RSS MB": 200.0},
}
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
    m = re.match(r" (\d+) requests to Consul(?: \(\d+ stale answers asked again\))?, (\d+) blocking queries", line)
    assert m, line
    return int(m.group(1)), int(m.group(2))


BATCH = 30  # instances per /v1/txn: two operations each (service, check), Consul 1.8 allows 64
PER_NODE = 250  # placeholder instances per catalog node


def node_prefix(n: int) -> str:
    """The first three octets of node ``n``'s addresses: 127.1.N up to 250 nodes, then 127.2.N-250, ...
    (172,000 instances are 688 nodes)."""
    return f"127.{1 + n // 250}.{n % 250}"


def register_all(consul: ConsulAgent, instances: int, services: int, progress: Callable[[int], None]) -> None:
    """Write the placeholder instances into the catalog, in transactions of ``BATCH``, four at a time."""
    session = requests.Session()

    def batch(lo: int) -> int:
        hi = min(instances, lo + BATCH)
        ops: list[dict[str, object]] = [
            {"Node": {"Verb": "set", "Node": {"Node": f"scale-{n}", "Address": f"{node_prefix(n)}.1"}}}
            for n in sorted({i // PER_NODE for i in range(lo, hi)})
        ]
        for i in range(lo, hi):
            sid, node = f"i{i}", f"scale-{i // PER_NODE}"
            address = f"{node_prefix(i // PER_NODE)}.{i % PER_NODE + 1}"
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


class ClientAgent:
    """A Consul client agent on loopback joined to ``server``, as disco runs in production (beside a
    client agent, as the HAProxy image does), with the connection limit per client raised as the
    image's consul/client.hcl does (``limit``)."""

    def __init__(self, server: ConsulAgent, workdir: Path, limit: int) -> None:
        self.http_port = take_port()
        serf_lan = json.loads(server.config.read_text())["ports"]["serf_lan"]
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "client.json"
        self.config.write_text(
            json.dumps(
                {
                    "node_name": "disco-client",
                    "server": False,
                    "bind_addr": "127.0.0.1",
                    "client_addr": "127.0.0.1",
                    "data_dir": str(workdir / "data"),
                    "retry_join": [f"127.0.0.1:{serf_lan}"],
                    "retry_interval": "1s",
                    "log_level": "WARN",
                    "disable_update_check": True,
                    "limits": {"http_max_conns_per_client": limit},
                    "ports": {
                        "http": self.http_port,
                        "dns": -1,
                        "grpc": -1,
                        "serf_lan": take_port(),
                        "serf_wan": take_port(),
                        "server": take_port(),
                    },
                }
            )
        )
        self.workdir = workdir
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        binary = find_consul(os.environ.get("DISCO_CONSUL_BIN"))
        self.proc = Proc([binary, "agent", "-config-file", str(self.config)], self.workdir / "client.log")
        wait_until(lambda: requests.get(f"{self.url}/v1/status/leader", timeout=1).json(), 60, what="the client joined")
        wait_until(
            lambda: requests.get(f"{self.url}/v1/catalog/node/disco-client", timeout=1).json(),
            60,
            what="the client agent's node in the catalog",
        )

    def put(self, path: str, body: object = None) -> object:
        response = requests.put(f"{self.url}{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json() if response.content else None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def churn(
    agent: ClientAgent | ConsulAgent,
    api: RuntimeAPI,
    services: int,
    changes: int,
    applied: dict[str, list[float]],
    progress: Callable[[int], None],
    budget: float = float("inf"),
    deadline: float = 30.0,
    record: list[tuple[float, float]] | None = None,
) -> str | None:
    """Add then remove up to ``changes`` instances one at a time, on the agent's own node and on new
    nodes in turn; append seconds from the start of the Consul call to HAProxy's view showing it, in
    ``applied["add"]`` and ``applied["remove"]``.  HAProxy's view is read by a probe stream of its own
    (the runtime API every 2 ms, bench/lib.py ProbeStream), independent of the call.  No new instance
    once ``budget`` seconds have gone; a change HAProxy does not show within ``deadline`` seconds ends
    the phase: returns what timed out (None when nothing did)."""

    def look(target: object) -> object:
        """One probe of the stream (in its own process): is ``target`` (service, instance) in HAProxy?"""
        if not isinstance(target, tuple):
            return None
        service, sid = target
        try:
            server = api.servers(service).get(sid)
        except Exception as exc:  # a probe that failed is a sample too, never a hit
            return ("error", str(exc))
        return ("up", sid) if server is not None and not server.draining else ("down", sid)

    start = time.perf_counter()
    with ProbeStream(look, limit=budget + 600, pause=0.002) as stream:
        for c in range(changes):
            if time.perf_counter() - start > budget:
                break
            service, sid = f"svc{c % services}", f"moving{c}"
            stream.aim((service, sid))
            new_node = c % 2 == 1
            check = {"CheckID": f"service:{sid}", "Name": "moving", "Status": "passing"}
            if new_node:  # an instance on a node of its own, new to the catalog
                node = {"Node": f"moving-node-{c}", "Address": f"127.10.{c // 250 % 250}.{c % 250 + 1}"}
                service_body = {"Service": service, "ID": sid, "Address": node["Address"], "Port": 9000 + c}
                add = ("/v1/catalog/register", {**node, "Service": service_body, "Check": {**check, "ServiceID": sid}})
                remove = ("/v1/catalog/deregister", {"Node": node["Node"]})
            else:  # on the client agent's node, registered through the agent as a service does
                body = {"Name": service, "ID": sid, "Address": "127.9.0.1", "Port": 9000 + c}
                add = (
                    "/v1/agent/service/register",
                    {**body, "Check": {"CheckID": check["CheckID"], "TTL": "24h", "Status": "passing"}},
                )
                remove = (f"/v1/agent/service/deregister/{sid}", None)

            def up(value: object, sid: str = sid) -> bool:
                return value == ("up", sid)

            def down(value: object, sid: str = sid) -> bool:
                return value == ("down", sid)

            try:
                for kind, (path, body_) in (("add", add), ("remove", remove)):
                    t = time.perf_counter()
                    agent.put(path, body_)
                    seen = stream.seen(t, up if kind == "add" else down, deadline)
                    applied[kind].append(seen)
                    if record is not None:
                        record.append((t, seen))
                    # One change at a time: the next one after a pause, or the watcher's quiescence timer
                    # (--wait, 10 ms) rightly takes it for a burst with this one.
                    time.sleep(max(0.0, t + PACE - time.perf_counter()))
            except TimeoutError as exc:
                return f"{sid}: {exc}"
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
    agent: bool = True,
    quick: bool = False,
) -> dict[str, object]:
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="disco-scale-"))
    # Without a client agent, one blocking query per service goes to the server: its limit per client
    # (200) is raised for it.  With one (as in production), the agent's is, as the image's config does
    # (4,096), or further for more services than that.
    # (Consul wants as many file descriptors and 20 more.)
    limit = min(max(4096, services * 5 // 4 + 100), resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 100)
    extra = {"limits": {"http_max_conns_per_client": services + 100}} if watch_mode == "service" and not agent else None
    consul = ConsulAgent(work, dev=consul_mode == "dev", extra=extra)
    consul.start()
    client = ClientAgent(consul, work / "client", limit) if agent else None
    procs: list[Proc] = []
    try:
        if client is not None:
            client.start()
        watched = client or consul
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
            watched.url,
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
        consul_pids = [p.proc.popen.pid for p in (consul, client) if p is not None and p.proc is not None]
        consul_a = [proc_figures(pid)[0] for pid in consul_pids]
        by_kind: dict[str, list[float]] = {"add": [], "remove": []}
        recorded: list[tuple[float, float]] = []
        t_churn = time.perf_counter()
        with phase(f"{label}: instances added and removed", changes) as report:
            timed_out = churn(
                watched, api, services, changes, by_kind, report, budget, deadline=30 * slow, record=recorded
            )
        applied = by_kind["add"] + by_kind["remove"]
        consul_cpu = [proc_figures(pid)[0] - before for pid, before in zip(consul_pids, consul_a, strict=True)]
        if timed_out:
            print(f"bench: {label}: {timed_out}", file=sys.stderr)
        churn_seconds = time.perf_counter() - t_churn
        req2, _ = stats(watch)
        cpu_b, peak = proc_figures(watch.popen.pid)
        chosen = re.search(r"watch mode (\w+)", watch.output())
        watch.stop()
        stages = split(recorded, read_timelines(watch.log))
        costs: dict[str, object] = {}
        if not quick:
            with phase(f"{label}: haproxy -c and reload, watcher stopped", 3) as report:
                try:
                    costs = haproxy_costs(cfg, master, admin, report, timeout=30 * slow)
                except AssertionError as exc:  # keep the watcher's figures
                    print(f"bench: {label}: {exc}", file=sys.stderr)
                    costs = {"haproxy_failed": str(exc)}
    finally:
        for proc in reversed(procs):
            proc.stop()
        if client is not None:
            client.stop()
        consul.stop()
    return {
        "instances": instances,
        "services": services,
        "consul": consul_mode,
        "watch_mode": watch_mode,
        "chosen_mode": chosen.group(1) if chosen else watch_mode,
        "client_agent": agent,
        "agent_conn_limit": limit if agent else None,
        "quick": quick,
        "registered_in_s": registered_in,
        "bootstrap_s": bootstrap,
        "haproxy_start_s": haproxy_start,
        "first_apply_s": first_apply,
        "change_timed_out": timed_out,
        "config_bytes": cfg.stat().st_size,
        **costs,
        "change_to_applied_ms": summary(applied),
        "adds_ms": summary(by_kind["add"]),
        "removals_ms": summary(by_kind["remove"]),
        "consul_cpu_per_change_ms": 1000 * sum(consul_cpu) / max(1, len(applied)),
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
        "measured_in_s": time.perf_counter() - began,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        nargs="*",
        default=[
            "100:10",
            "100:10:catalog",
            "1000:100",
            "1000:100:catalog",
            "10000:500",
            "10000:500:catalog",
            "50000:2500",
            "50000:2500:catalog",
            "172000:10000",
        ],
        help="INSTANCES:SERVICES[:WATCH_MODE]; the mode defaults to --watch-mode",
    )
    parser.add_argument(
        "--idle", type=float, default=30.0, help=f"idle seconds measured at {IDLE_FROM:,} instances and more"
    )
    parser.add_argument("--idle-small", type=float, default=10.0, help="idle seconds at the other sizes")
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
    parser.add_argument(
        "--no-agent",
        action="store_true",
        help="disco talks to the server directly (by default: to a client agent joined to it, as in production)",
    )
    parser.add_argument(
        "--quick",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"sizes of {QUICK_FROM:,} instances and more: {QUICK_CHANGES} changes, {QUICK_IDLE:.0f} s idle, "
        "no haproxy -c / reload timing (said so in the tables)",
    )
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/scale.json")
    parser.add_argument("--png", type=Path, default=REPO / "docs/img/scale.png", help="the plot drawn at the end")
    args = parser.parse_args()
    require_tools("haproxy", "consul")
    rows = []
    for size in args.sizes:
        count, services_count, *mode = size.split(":")
        if mode and mode[0] not in MODES:
            parser.error(f"--sizes {size}: the watch mode is one of {', '.join(MODES)}")
        idle = args.idle if int(count) >= IDLE_FROM else args.idle_small
        quick = args.quick and int(count) >= QUICK_FROM
        rows.append(
            run_size(
                int(count),
                int(services_count),
                QUICK_IDLE if quick else idle,
                min(args.changes, QUICK_CHANGES) if quick else args.changes,
                args.churn_budget,
                args.consul,
                mode[0] if mode else args.watch_mode,
                agent=not args.no_agent,
                quick=quick,
            )
        )
        print(f"bench: {size} measured in {rows[-1]['measured_in_s']:.0f} s", file=sys.stderr)
    print(table(rows))
    print(
        "\nLatency budget (ms per change; bench/budget.py; probe: the runtime API polled every 2 ms):\n"
        + budget_table({size_label(r): r.get("budget_ms", {}) for r in rows}, digits=1)
    )
    print(side_by_side(rows))
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
    lines += [
        "",
        "| instances | watch | adds p50 ms | adds p99 ms | removals p50 ms | removals p99 ms "
        "| Consul CPU ms/change (server + agent) | via |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "adds_ms" not in r:
            continue
        a, m = r["adds_ms"], r["removals_ms"]
        via = "client agent" if r.get("client_agent") else "server"
        lines.append(
            f"| {r['instances']} | {watch_label(r)} | {a['p50']:.1f} | {a['p99']:.1f} | {m['p50']:.1f} | "
            f"{m['p99']:.1f} | {r.get('consul_cpu_per_change_ms', float('nan')):.1f} | {via} |"
        )
    for r in rows:
        for key in ("change_timed_out", "haproxy_failed"):
            if r.get(key):
                lines.append(f"\n{size_label(r)}: {r[key]}")
    return "\n".join(lines)


def side_by_side(rows: list[dict]) -> str:
    """This version's default watch (auto) beside 0.1.0's (the catalog-wide watch) at each size both
    were measured at, and issue 20's targets where it sets some."""
    new = {(r["instances"], r["services"]): r for r in rows if r.get("watch_mode", "auto") == "auto"}
    old = {(r["instances"], r["services"]): r for r in rows if r.get("watch_mode") == "catalog"}

    def figures(r: dict | None) -> dict[str, float]:
        if r is None:
            return {}
        c = r["change_to_applied_ms"]
        return {
            "p50 ms": c["p50"],
            "p99 ms": c["p99"],
            "CPU ms/change": r["cpu_per_change_ms"],
            "first pass s": r["first_apply_s"],
            "peak RSS MB": r["peak_rss_mb"],
            "Consul CPU ms/change": r.get("consul_cpu_per_change_ms", float("nan")),
        }

    names = list(figures(next(iter(new.values()), None) or next(iter(old.values()), None)))
    lines = [
        "\nThis version's default watch (auto) beside 0.1.0's (catalog-wide, --watch-mode catalog), same run:\n",
        "| instances | services | " + " | ".join(f"{n} (now / 0.1.0)" for n in names) + " |",
        "|---:|---:|" + "---:|" * len(names),
    ]
    verdicts = []
    for key in sorted(new.keys() | old.keys()):
        now, then = figures(new.get(key)), figures(old.get(key))
        quick = " (quick)" if (new.get(key) or old.get(key) or {}).get("quick") else ""
        cells = []
        for n in names:
            a, b = now.get(n), then.get(n)
            cells.append(f"{'-' if a is None else f'{a:,.1f}'} / {'-' if b is None else f'{b:,.1f}'}")
        lines.append(f"| {key[0]:,}{quick} | {key[1]:,} | " + " | ".join(cells) + " |")
        for n, most in TARGETS.get(key, {}).items():
            if n in now:
                met = "met" if now[n] <= most else "NOT met"
                verdicts.append(f"- {key[0]:,} / {key[1]:,}: {n} {now[n]:,.1f} (target <= {most:g}): {met}")
    if verdicts:
        lines += ["", "Issue 20's targets, with the default watch:", *verdicts]
    return "\n".join(lines)


def watch_label(row: dict) -> str:
    """How the watcher followed Consul at that size: the catalog-wide watch, or one query per service
    (auto: what the watcher chose, from its log; older rows: one query per service up to 8 services)."""
    mode = row.get("chosen_mode") or row.get("watch_mode", "auto")
    if mode == "auto":
        mode = "service" if row["services"] <= 8 else "catalog"
    label = "per service" if mode == "service" else "catalog-wide"
    return label + (" (quick)" if row.get("quick") else "")


def size_label(row: dict) -> str:
    """A size, and the watch mode when it was asked for (two rows of one size stay apart)."""
    mode = row.get("watch_mode", "auto")
    return f"{row['instances']}" + ("" if mode == "auto" else f" {watch_label(row)}")


if __name__ == "__main__":
    sys.exit(main())
