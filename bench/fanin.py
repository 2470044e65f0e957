#!/usr/bin/env python3
"""Fan-in: many load balancers, one Consul cluster.

A three-server Consul 1.8.7 cluster on loopback (own ports and data directories,
started and stopped here) and N `disco watch` processes (default 1, 10, 30), each
its own process, spread round-robin over the three servers (`--consul-addr`; the
first on a follower), with and without `--stale`.  HAProxy is not the subject: the
watchers run with the bundled template and `--dry-run` (render, print, touch nothing;
`--check-cmd true`), so what is measured is the load the watchers put on Consul and
how fast they follow it.

For each phase, changes are made one at a time through the leader's HTTP API (an
instance registered with `/v1/catalog/register` on a node of its own, then
deregistered, in turn), each once every watcher has applied the one before:

- requests per second each server answered during the changes: HTTP reads (the
  `consul_http_GET_*` counts of each server's `/v1/agent/metrics?format=prometheus`,
  without the bench's own metrics and leader queries) and RPCs it served
  (`consul_rpc_request`: a follower forwards a default-consistency read to the
  leader over RPC, a `?stale` read it answers itself);
- each server's CPU (utime + stime from /proc) over the same time;
- change -> applied: from the API call to the watcher's log line for the render
  that has the new instance count (`rendered 1 backends, N servers` with
  `--log-format json`; its time is the watcher's own clock), p50/p99 over every
  watcher and change, and over the last watcher of each change.

Then two leader-kill phases (N = 10, on the two followers, since the leader's
own watchers would lose their server), with `--stale` and, for contrast, without:
the leader is SIGKILLed and changes go on through a surviving server (a write
waits for the next leader, so the first change waits out the election); reported
are the election's length, the changes asked for during it and whether every
watcher applied them, the longest change -> applied (from the ask, and from
Consul's acceptance), and the warnings the watchers logged (failed reads).  The
killed server is started again after each.

Prints a table and writes JSON (bench/results/fanin.json).
Usage: .venv/bin/python bench/fanin.py [--watchers 1 10 30] [--changes 100] [--kill-changes 20]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.lib import draw, phase, require_tools, summarize, write_json
from testkit import DISCO, ClusterServer, ConsulCluster, wait_until

SERVICE = "web"
BASE = 3  # instances always there
DEADLINE = 20.0  # one change, every watcher: give up after this long
START_DEADLINE = 180.0
RENDERED = re.compile(r"^rendered \d+ backends, (\d+) servers")
NODE = {"Node": "fanin-node", "Address": "127.0.4.1"}


@dataclass
class WatchProc:
    """One `disco watch --dry-run` process; a thread reads its JSON log lines."""

    server: ClusterServer
    argv: list[str]
    renders: list[tuple[float, int]] = field(default_factory=list)  # (wall time of the log line, servers)
    trouble: list[tuple[float, str]] = field(default_factory=list)  # warnings and errors
    popen: subprocess.Popen[bytes] | None = None

    def start(self, seen: threading.Condition) -> None:
        self.popen = subprocess.Popen(
            self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, cwd=REPO
        )
        threading.Thread(target=self._read, args=(seen,), daemon=True).start()

    def _read(self, seen: threading.Condition) -> None:
        assert self.popen is not None and self.popen.stderr is not None
        for raw in self.popen.stderr:
            try:
                line = json.loads(raw)
                when = datetime.strptime(line["time"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            except (ValueError, KeyError):
                continue
            match = RENDERED.match(line.get("message", ""))
            with seen:
                if match:
                    self.renders.append((when, int(match.group(1))))
                elif line.get("level") in ("WARNING", "ERROR"):
                    self.trouble.append((when, line["message"]))
                seen.notify_all()

    def applied(self, after: int, servers: int) -> float | None:
        """Wall time of the first render at or after position ``after`` with ``servers`` servers."""
        return next((t for t, n in self.renders[after:] if n == servers), None)

    def terminate(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)

    def wait(self) -> None:
        if self.popen is None:
            return
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


def stop_all(watchers: list[WatchProc]) -> None:
    """SIGTERM to every watcher first, then wait for each (in turn, 30 would take a while)."""
    for w in watchers:
        w.terminate()
    for w in watchers:
        w.wait()


def instance(n: int, prefix: str = "m") -> dict[str, Any]:
    """A catalog registration on a node of its own (no agent: a server's death does not touch it)."""
    sid = f"{prefix}{n}"
    return {
        **NODE,
        "Service": {"Service": SERVICE, "ID": sid, "Address": f"127.0.4.{2 + n % 250}", "Port": 9000 + n % 1000},
        "Check": {"CheckID": f"service:{sid}", "Name": "fanin", "ServiceID": sid, "Status": "passing"},
    }


def change(server: ClusterServer, n: int) -> None:
    """Change ``n``: even, instance n//2 registered; odd, deregistered (count BASE + 1, then BASE)."""
    if n % 2 == 0:
        server.put("/v1/catalog/register", instance(n // 2))
    else:
        server.put("/v1/catalog/deregister", {"Node": NODE["Node"], "ServiceID": f"m{n // 2}"})


def expected(n: int) -> int:
    return BASE + 1 if n % 2 == 0 else BASE


def counters(server: ClusterServer) -> dict[str, float]:
    """Running totals of one server: HTTP reads (GETs, without the bench's own) and RPCs served."""
    gets = rpc = 0.0
    for line in server.metrics().splitlines():
        name, _, value = line.rpartition(" ")
        if (
            name.startswith("consul_http_GET_")
            and name.endswith("_count")
            and "agent_metrics" not in name
            and "status_leader" not in name
        ):
            gets += float(value)
        elif name == "consul_rpc_request":
            rpc += float(value)
    return {"gets": gets, "rpc": rpc, "cpu": server.cpu_seconds(), "t": time.monotonic()}


def start_watchers(
    servers: list[ClusterServer], count: int, stale: bool, work: Path, seen: threading.Condition
) -> list[WatchProc]:
    watchers = []
    for i in range(count):
        server = servers[i % len(servers)]
        argv = [
            *DISCO,
            "watch",
            "--service",
            SERVICE,
            "--output",
            str(work / f"unused-{i}.cfg"),
            "--dry-run",
            "--check-cmd",
            "true",
            "--log-format",
            "json",
            "--consul-addr",
            server.url,
            *(["--stale"] if stale else []),
        ]
        watchers.append(WatchProc(server, argv))
    for w in watchers:
        w.start(seen)
    return watchers


def render_marks(watchers: list[WatchProc], seen: threading.Condition) -> list[int]:
    """How many renders each watcher has logged so far: where :func:`wait_all` starts looking."""
    with seen:
        return [len(w.renders) for w in watchers]


def wait_all(
    watchers: list[WatchProc], seen: threading.Condition, marks: list[int], servers: int, deadline: float
) -> list[float | None]:
    """Wall times at which each watcher rendered ``servers`` servers after its mark (None: not by the deadline)."""
    end = time.monotonic() + deadline
    with seen:
        while True:
            times = [w.applied(m, servers) for w, m in zip(watchers, marks, strict=False)]
            left = end - time.monotonic()
            if all(t is not None for t in times) or left <= 0:
                return times
            seen.wait(min(left, 0.5))


def run_phase(
    cluster: ConsulCluster, count: int, stale: bool, changes: int, work: Path, first_change: int
) -> dict[str, Any]:
    leader = cluster.leader()
    seen = threading.Condition()
    # Round-robin from a follower: a single watcher reads through a follower, as most would.
    order = [s for s in cluster.servers if s is not leader] + [leader]
    watchers = start_watchers(order, count, stale, work, seen)
    label = f"N={count} {'--stale' if stale else 'default'}"
    try:
        started = time.monotonic()
        times = wait_all(watchers, seen, [0] * count, BASE, START_DEADLINE)
        if any(t is None for t in times):
            raise SystemExit(f"fanin: {label}: {times.count(None)} watchers never rendered the first config")
        startup = time.monotonic() - started
        time.sleep(1.0)  # let the start-up CPU settle before the counters are read
        before = {s.name: counters(s) for s in cluster.servers}
        samples, last, missed = [], [], 0
        t_changes = time.monotonic()
        with phase(f"{label}: changes", changes) as report:
            for k in range(changes):
                n = first_change + k
                marks = render_marks(watchers, seen)
                t0 = time.time()
                change(leader, n)
                times = wait_all(watchers, seen, marks, expected(n), DEADLINE)
                got = [t - t0 for t in times if t is not None]
                missed += len(times) - len(got)
                samples += got
                if len(got) == len(times):
                    last.append(max(got))
                report(k + 1)
        changes_seconds = time.monotonic() - t_changes
        after = {s.name: counters(s) for s in cluster.servers}
    finally:
        stop_all(watchers)
    per_server = []
    for s in cluster.servers:
        b, a = before[s.name], after[s.name]
        seconds = a["t"] - b["t"]
        per_server.append(
            {
                "server": s.name,
                "role": "leader" if s is leader else "follower",
                "watchers": sum(1 for w in watchers if w.server is s),
                "http_reads_per_s": (a["gets"] - b["gets"]) / seconds,
                "rpc_per_s": (a["rpc"] - b["rpc"]) / seconds,
                "cpu_percent": 100 * (a["cpu"] - b["cpu"]) / seconds,
                "seconds": seconds,
                "http_reads_per_change": (a["gets"] - b["gets"]) / changes,
                "rpc_per_change": (a["rpc"] - b["rpc"]) / changes,
                "cpu_ms_per_change": 1000 * (a["cpu"] - b["cpu"]) / changes,
            }
        )
    return {
        "watchers": count,
        "stale": stale,
        "changes": changes,
        "startup_s": startup,
        "changes_per_s": changes / changes_seconds,
        "change_to_applied_ms": summarize(samples) if samples else {},
        "last_watcher_ms": summarize(last) if last else {},
        "missed": missed,
        "watcher_errors": sum(len(w.trouble) for w in watchers),
        "servers": per_server,
    }


def run_leader_kill(
    cluster: ConsulCluster, count: int, stale: bool, changes: int, work: Path, first_change: int
) -> dict[str, Any]:
    """Kill the leader under ``count`` watchers on the two followers; the killed server is started
    again at the end (same data directory), and the three agree on a leader before this returns."""
    leader = cluster.leader()
    survivors = [s for s in cluster.servers if s is not leader]
    seen = threading.Condition()
    watchers = start_watchers(survivors, count, stale, work, seen)
    try:
        times = wait_all(watchers, seen, [0] * count, BASE, START_DEADLINE)
        if any(t is None for t in times):
            raise SystemExit("fanin: leader kill: watchers never rendered the first config")
        new_leader_at: list[float] = []

        def watch_election() -> None:  # bounded: 60 s
            end = time.monotonic() + 60
            while time.monotonic() < end and not new_leader_at:
                try:
                    seen_leaders = {s.leader() for s in survivors}
                except requests.RequestException:
                    seen_leaders = {""}
                if len(seen_leaders) == 1 and "" not in seen_leaders and leader.raft_address not in seen_leaders:
                    new_leader_at.append(time.time())
                time.sleep(0.05)

        killed_at = time.time()
        leader.kill()
        election = threading.Thread(target=watch_election, daemon=True)
        election.start()
        rows = []
        with phase(f"leader killed, N={count} {'--stale' if stale else 'default'}: changes", changes) as report:
            for k in range(changes):
                n = first_change + k
                marks = render_marks(watchers, seen)
                asked = time.time()
                accepted, end = None, time.monotonic() + DEADLINE
                while accepted is None and time.monotonic() < end:
                    try:
                        change(survivors[k % 2], n)  # a follower holds the write until there is a leader
                        accepted = time.time()
                    except requests.RequestException:
                        time.sleep(0.1)
                applied = wait_all(watchers, seen, marks, expected(n), DEADLINE) if accepted else [None] * count
                rows.append(
                    {
                        "asked": asked,
                        "accepted": accepted,
                        "all_applied": None if None in applied else max(a for a in applied if a),
                    }
                )
                report(k + 1)
        election.join(60)
        errors = sum(1 for w in watchers for t, _ in w.trouble if t >= killed_at)
    finally:
        stop_all(watchers)
        leader.start()
    wait_until(
        lambda: len({s.leader() for s in cluster.servers}) == 1 and cluster.servers[0].leader(),
        60,
        interval=0.2,
        what="the killed server back, one leader",
    )
    elected = new_leader_at[0] if new_leader_at else None
    during = [r for r in rows if elected is None or r["asked"] < elected]
    done = [r for r in rows if r["all_applied"] is not None]
    return {
        "watchers": count,
        "stale": stale,
        "changes": changes,
        "election_s": (elected - killed_at) if elected else None,
        "changes_asked_during_election": len(during),
        "of_those_applied_by_all": sum(1 for r in during if r["all_applied"] is not None),
        "changes_applied_by_all": len(done),
        "max_asked_to_applied_ms": max(1000 * (r["all_applied"] - r["asked"]) for r in done) if done else None,
        "max_accepted_to_applied_ms": max(1000 * (r["all_applied"] - r["accepted"]) for r in done) if done else None,
        "watcher_errors_after_kill": errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watchers", type=int, nargs="*", default=[1, 10, 30])
    parser.add_argument("--changes", type=int, default=100, help="changes per phase")
    parser.add_argument("--kill-watchers", type=int, default=10)
    parser.add_argument("--kill-changes", type=int, default=20, help="changes after the leader is killed (0: none)")
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/fanin.json")
    args = parser.parse_args()
    require_tools("consul")
    print("fanin: HAProxy is not the subject: watchers run with --dry-run and the bundled template", file=sys.stderr)
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="disco-fanin-"))
    cluster = ConsulCluster(work / "cluster")
    phases: list[dict[str, Any]] = []
    kills: list[dict[str, Any]] = []
    try:
        cluster.start()
        leader = cluster.leader()
        for n in range(BASE):  # the instances that are always there
            leader.put("/v1/catalog/register", instance(n, "base"))
        made = 0

        def account(changes: int) -> None:
            nonlocal made
            made += changes + changes % 2  # keep the next phase starting on a registration
            if changes % 2:
                change(cluster.leader(), made - 1)

        for count in args.watchers:
            for stale in (False, True):
                phases.append(run_phase(cluster, count, stale, args.changes, work, made))
                account(args.changes)
        for stale in (True, False) if args.kill_changes else ():
            kills.append(run_leader_kill(cluster, args.kill_watchers, stale, args.kill_changes, work, made))
            account(args.kill_changes)
    finally:
        cluster.stop()
    wall = time.perf_counter() - t_start

    print(
        "HAProxy is not the subject: `disco watch --dry-run` processes, 3 Consul 1.8.7 servers on loopback; "
        "per server: leader / follower / follower"
    )
    print(
        "| watchers | reads | changes | change→applied p50 ms | p99 ms | last watcher p50 ms "
        "| changes/s | HTTP reads/s per server | RPCs/s per server | CPU % per server | CPU ms per change per server |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---|---|---|---|")
    for p in phases:
        c, lw = p["change_to_applied_ms"], p["last_watcher_ms"]
        ordered = sorted(p["servers"], key=lambda s: s["role"] != "leader")

        def triple(key: str, fmt: str, ordered: list[dict[str, Any]] = ordered) -> str:
            return " / ".join(format(s[key], fmt) for s in ordered)

        missed = f" ({p['missed']} missed)" if p["missed"] else ""
        print(
            f"| {p['watchers']} | {'stale' if p['stale'] else 'default'} | {p['changes']}{missed} "
            f"| {c.get('p50', 0):.1f} | {c.get('p99', 0):.1f} "
            f"| {lw.get('p50', 0):.1f} | {p['changes_per_s']:.1f} | {triple('http_reads_per_s', '.0f')} | {triple('rpc_per_s', '.0f')} "
            f"| {triple('cpu_percent', '.1f')} | {triple('cpu_ms_per_change', '.1f')} |"
        )
    for kill in kills:
        election = f"{kill['election_s']:.1f} s" if kill["election_s"] is not None else "not seen"
        print(
            f"\nleader killed ({'--stale' if kill['stale'] else 'default reads'}, {kill['watchers']} watchers on "
            f"the two followers): election {election}; "
            f"{kill['changes_asked_during_election']} changes asked for during it (a write waits for the next "
            f"leader), {kill['of_those_applied_by_all']} of them applied by every watcher; "
            f"{kill['changes_applied_by_all']}/{kill['changes']} changes applied by all; "
            f"max change→applied {kill['max_asked_to_applied_ms'] or 0:.0f} ms from the ask "
            f"({kill['max_accepted_to_applied_ms'] or 0:.0f} ms from Consul's acceptance); "
            f"{kill['watcher_errors_after_kill']} warnings or errors logged by the watchers (failed reads)"
        )
    print(f"\nwall time {wall:.0f} s")
    write_json(args.json, {"consul": "1.8.7", "servers": 3, "wall_s": wall, "phases": phases, "leader_kill": kills})
    draw("plot_fanin", args.json, REPO / "docs/img/fanin.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
