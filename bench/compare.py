#!/usr/bin/env python3
"""disco against the alternatives, side by side in one run on this machine.

For each contender (disco with live apply, disco with reloads only, HAProxy's
own DNS service discovery against Consul's DNS, `consul watch` + a handler that
re-renders and reloads), on a fresh Consul dev agent and HAProxy 2.6:

1. Convergence: N changes (register, check critical, check passing,
   deregister, in turn, at most one every 250 ms) on an idle balancer; the time from the start of
   the Consul API call to the end of the first probe answered by an added instance, or of the last
   probe answered by a removed one.  The probes run as a stream of their own (bench/lib.py
   ProbeStream), started before the changes and independent of the API call, so a removal that is
   live while the call is in flight is seen as such; adds and removals are reported apart.
The floor (bench/floor.py) is measured first, in the same run: a raw blocking-query
client seeing the same changes; for adds, plus the probes it takes to find the new server in the
rotation (round robin over ROTATION servers: one to ROTATION probes); for removals, nothing more.
Adds and removals are each shown as a multiple of their own floor.

2. Failed requests under churn: wrk sends a steady load through HAProxy (fresh
   connection per request) while N more changes happen; socket errors and
   non-2xx answers are counted.

Prints a markdown table and writes JSON (bench/results/compare.json).
Usage: .venv/bin/python bench/compare.py [--changes 200] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.budget import read_timelines, split
from bench.budget import table as budget_table
from bench.contenders import ALL, Contender
from bench.floor import BlockingQueryClient
from bench.lib import (
    ADDS,
    KINDS,
    MOVING_ADDRESS,
    REMOVALS,
    Load,
    cycles,
    draw,
    drive_changes,
    phase,
    probe,
    probe_cost,
    require_tools,
    serve,
    summarize,
    write_json,
)
from testkit import ConsulAgent, take_port, wait_until


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError):
            pass
    return total


def run_one(name: str, cls: type[Contender], changes: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="disco-compare-"))
    consul = ConsulAgent(work, dns=True)
    consul.start()
    servers = [serve(f"base-{n}", f"127.0.0.{n}") for n in (1, 2, 3)]
    spare, spare_port = serve("moving", MOVING_ADDRESS)
    for n, (_, port) in enumerate(servers, 1):
        consul.put(
            "/v1/agent/service/register", {"Name": "web", "ID": f"base-{n}", "Address": f"127.0.0.{n}", "Port": port}
        )
    lb = take_port()
    contender, load = cls(name, work, consul, lb), Load(lb)
    try:
        with phase(f"{name}: starting, until the three base instances answer", 1) as report:
            contender.start()
            wait_until(
                lambda: {probe(lb) for _ in range(9)} == {"base-1", "base-2", "base-3"},
                30,
                what=f"{name}: the three base instances answering",
            )
            cost = probe_cost(lb)
            report(1)
        cpu0 = cpu_seconds(contender.watcher_pids())
        total = 4 * cycles(changes)
        recorded: list[tuple[float, float]] = []
        with phase(f"{name}: changes, idle", total) as report:
            idle = drive_changes(consul, lb, spare_port, changes, report, record=recorded)
        cpu_idle = cpu_seconds(contender.watcher_pids()) - cpu0
        log = contender.timeline_log()
        budget = split(recorded, read_timelines(log)) if log is not None else {}
        load.start()
        time.sleep(1.0)  # let wrk's connections get going before the first change
        with phase(f"{name}: changes under load (wrk)", total) as report:
            churn = drive_changes(consul, lb, spare_port, changes, report)
        wrk = load.stop()
    finally:
        load.close()
        contender.stop()
        consul.stop()
        for server, _ in [*servers, (spare, 0)]:
            server.shutdown()
    flat = [v for values in idle.values() for v in values]
    flat_churn = [v for values in churn.values() for v in values]
    removals = [v for k in REMOVALS for v in idle[k]]
    return {
        "convergence_ms": summarize(flat),
        "adds_ms": summarize([v for k in ADDS for v in idle[k]]),
        "removals_ms": summarize(removals),
        "removals_at_zero": sum(1 for v in removals if v <= 0),
        "convergence_samples_ms": samples(flat),
        "by_kind_ms": {k: summarize(idle[k]) for k in KINDS},
        "convergence_under_load_ms": summarize(flat_churn),
        "load": wrk,
        "failed_requests": wrk["socket_errors"] + wrk["non_2xx"],
        "probe_ms": cost * 1000,
        "watcher_cpu_s_per_change": cpu_idle / max(1, len(flat)),
        **({"budget_ms": {stage: summarize(v) for stage, v in budget.items()}} if budget else {}),
    }


def run_floor(changes: int) -> dict[str, object]:
    """The floor row: a raw blocking-query client seeing the same changes, plus one probe's cost."""
    work = Path(tempfile.mkdtemp(prefix="disco-floor-"))
    consul = ConsulAgent(work)
    consul.start()
    base, base_port = serve("base-1", "127.0.0.1")
    spare, spare_port = serve("moving", MOVING_ADDRESS)
    consul.put("/v1/agent/service/register", {"Name": "web", "ID": "base-1", "Address": "127.0.0.1", "Port": base_port})
    client = BlockingQueryClient(consul)
    try:
        client.start()
        cost = probe_cost(base_port)
        with phase("floor: changes seen by a raw blocking query", 4 * cycles(changes)) as report:
            seen = drive_changes(consul, 0, spare_port, changes, report, observe=client.seen_after)
    finally:
        client.stop()
        consul.stop()
        base.shutdown()
        spare.shutdown()
    # An add is found by the probes up to ROTATION requests after it is live (round robin): spread
    # evenly over the rotation; a removal needs no probe to be live.
    adds = [v + cost * (1 + n % ROTATION) for n, v in enumerate(v for k in ADDS for v in seen[k])]
    removals = [v for k in REMOVALS for v in seen[k]]
    flat = [v + cost for values in seen.values() for v in values]
    return {
        "convergence_ms": summarize(flat),
        "adds_ms": summarize(adds),
        "removals_ms": summarize(removals),
        "convergence_samples_ms": samples(flat),
        "probe_ms": cost * 1000,
        "blocking_query_ms": summarize([v for values in seen.values() for v in values]),
    }


#: Servers in the rotation when the moving instance is in: base-1, base-2, base-3 and it.
ROTATION = 4


def samples(values: list[float]) -> list[float]:
    """Every change's time in ms, for the distribution in the plot (bench/plots.py)."""
    return [round(v * 1000, 3) for v in values]


def split_table(results: dict[str, dict], floor: dict | None) -> str:
    """Adds and removals apart, each against its own floor (p50 / p99 in ms, and as a multiple of the floor)."""
    lines = [
        "| contender | adds p50 ms | adds p99 ms | adds p50 / p99 vs floor | removals p50 ms | removals p99 ms "
        "| removals p50 / p99 vs floor | removals seen gone at the first probe |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = ([("*floor*", floor)] if floor else []) + list(results.items())
    for name, r in rows:
        if "adds_ms" not in r:
            continue
        cells = []
        for key in ("adds_ms", "removals_ms"):
            c = r[key]
            f = floor[key] if floor else None
            vs = f"{c['p50'] / f['p50']:.1f}x / {c['p99'] / f['p99']:.1f}x" if f and f["p50"] and f["p99"] else "-"
            cells.append(f"{c['p50']:.1f} | {c['p99']:.1f} | {vs}")
        zero = r.get("removals_at_zero")
        at_zero = "-" if zero is None else f"{zero} of {r['removals_ms']['n']}"
        lines.append(f"| {name} | {' | '.join(cells)} | {at_zero} |")
    return "\n".join(lines)


def table(results: dict[str, dict], floor: dict | None) -> str:
    ref = results.get("disco (live)")
    lines = [
        "| contender | p50 ms | p95 ms | p99 ms | max ms | p50 / p99 vs floor | p99 vs disco (live) "
        "| failed / requests under churn | req/s | p99 ms under load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if floor is not None:
        f = floor["convergence_ms"]
        lines.append(
            f"| *floor: raw blocking query + one probe* | {f['p50']:.1f} | {f['p95']:.1f} | {f['p99']:.1f} | "
            f"{f['max']:.1f} | 1.0x / 1.0x | - | - | - | - |"
        )
    for name, r in results.items():
        c, load = r["convergence_ms"], r["load"]
        ratio = f"{c['p99'] / ref['convergence_ms']['p99']:.1f}x" if ref else "-"
        vs_floor = (
            f"{c['p50'] / floor['convergence_ms']['p50']:.1f}x / {c['p99'] / floor['convergence_ms']['p99']:.1f}x"
            if floor
            else "-"
        )
        lines.append(
            f"| {name} | {c['p50']:.0f} | {c['p95']:.0f} | {c['p99']:.0f} | {c['max']:.0f} | {vs_floor} | "
            f"{ratio} | {r['failed_requests']:.0f} / {load['requests']:.0f} | {load['rps']:.0f} | "
            f"{r['convergence_under_load_ms']['p99']:.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=200, help="changes per phase (a multiple of 4)")
    parser.add_argument("--only", nargs="*", choices=list(ALL), help="run only these contenders")
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/compare.json")
    parser.add_argument("--png", type=Path, default=REPO / "docs/img/compare.png", help="the plot drawn at the end")
    args = parser.parse_args()
    require_tools("haproxy", "consul", "wrk")
    results, failed = {}, {}
    floor = run_floor(args.changes)
    for name, cls in ALL.items():
        if not args.only or name in args.only:
            try:
                results[name] = run_one(name, cls, args.changes)
            except (TimeoutError, AssertionError) as exc:  # one contender failing keeps the others' figures
                print(f"bench: {name} failed: {exc}", file=sys.stderr)
                failed[name] = str(exc)
    if not results:
        return 1
    print(table(results, floor))
    print("\nAdds and removals apart, each against its own floor (idle phase):\n" + split_table(results, floor))
    if budgets := {name: r["budget_ms"] for name, r in results.items() if "budget_ms" in r}:
        print("\nLatency budget (ms per change, idle phase; bench/budget.py):\n" + budget_table(budgets))
    for name, why in failed.items():
        print(f"\n{name}: no figures, it failed: {why}")
    first = next(iter(results.values()))
    print(
        f"\n{4 * cycles(args.changes)} changes per phase; probe client {first['probe_ms']:.2f} ms per request "
        f"(fresh connection); load: wrk, 8 connections, Connection: close."
    )
    write_json(args.json, {"floor": floor, **results, **{name: {"failed": why} for name, why in failed.items()}})
    draw("plot_compare", args.json, args.png)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
