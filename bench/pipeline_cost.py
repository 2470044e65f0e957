#!/usr/bin/env python3
"""The pipeline's own cost per change, in process: no Consul, no HAProxy.

The watcher's pass (:mod:`discovery.pipeline.passes`) on a catalog of INSTANCES across
SERVICES (the shape bench/scale.py registers), with a runtime API that takes every
operation at once (so what is timed is disco's own work: state, render, decide, write):
a first pass, then CHANGES passes that each add one instance to a service and remove it
again.  Prints the milliseconds per stage (p50 / p99, from the pass's timeline), the CPU
time per change and the peak RSS, which bench/scale.py's end-to-end figures include.

Usage: .venv/bin/python bench/pipeline_cost.py [--size 50000:2500] [--changes 40] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from discovery.haproxy.files import LiveConfig
from discovery.haproxy.plan import Op, ParsedConfig
from discovery.haproxy.render import Renderer
from discovery.pipeline.events import EventBus, Timed
from discovery.pipeline.execute import Executor
from discovery.pipeline.failover import FailoverStage
from discovery.pipeline.followed import Followed
from discovery.pipeline.live import LiveUpdater
from discovery.pipeline.overrides import OverrideStage
from discovery.pipeline.passes import Passes
from discovery.pipeline.template_file import TemplateFile
from discovery.pipeline.timeline import Timeline
from discovery.state.convert import convert
from discovery.state.gate import GatePolicy
from discovery.state.model import DesiredState, Service

TEMPLATE = REPO / "bench/templates/scale.cfg.j2"


class TakesEverything(LiveUpdater):
    """A runtime API that applies every operation at once and reads back what was asked."""

    def __init__(self) -> None:
        super().__init__(api=None, drain_grace=0.0)  # type: ignore[arg-type]

    def execute(self, ops: tuple[Op, ...], new: ParsedConfig | None, mark: Any = None) -> int:
        if mark is not None:
            mark("runtime")
            mark("readback")
        return len(ops)

    def verify(self, parsed: ParsedConfig | None, backends: set[str] | None, touched: Any = None) -> None:
        """HAProxy runs what it was asked to."""


def entry(i: int, service: str, node: int) -> dict[str, Any]:
    sid = f"i{i}"
    return {
        "Node": {"Node": f"scale-{node}", "Address": f"127.1.{node % 250}.1"},
        "Service": {
            "ID": sid,
            "Service": service,
            "Address": f"127.1.{node % 250}.{i % 250 + 1}",
            "Port": 8000 + i % 1000,
        },
        "Checks": [{"CheckID": f"service:{sid}", "Status": "passing", "ServiceID": sid}],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="50000:2500", help="INSTANCES:SERVICES")
    parser.add_argument("--changes", type=int, default=40)
    parser.add_argument("--profile", action="store_true", help="print the 30 costliest functions of the changes")
    parser.add_argument("--memory", action="store_true", help="print where the memory held at the end was allocated")
    args = parser.parse_args()
    instances, services = (int(x) for x in args.size.split(":"))
    names = [f"svc{n}" for n in range(services)]
    entries: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for i in range(instances):
        entries[names[i % services]].append(entry(i, names[i % services], i // 250))

    if args.memory:
        tracemalloc.start(4)
    work = Path(tempfile.mkdtemp(prefix="disco-cost-"))
    bus = EventBus()
    timed: list[Timed] = []
    bus.subscribe(lambda e: timed.append(e) if isinstance(e, Timed) else None)
    clock = time.monotonic
    followed = Followed(names, discover=False)
    failover = FailoverStage((), GatePolicy(), bus.emit, clock)
    overrides = OverrideStage(None, bus.emit)
    executor = Executor(LiveConfig(work / "haproxy.cfg"), None, None, threading.Event(), updater=TakesEverything())
    executor._trust_forms = True  # as with haproxy -c: known line forms skip the check (discovery.haproxy.forms)
    values = {"frontend_port": "8080", "admin_socket": str(work / "admin.sock")}
    # HAProxy started on the bootstrap config (every backend, no server), as bench/scale.py starts it
    bootstrap = DesiredState(tuple(Service(name) for name in names))
    (work / "haproxy.cfg").write_text(Renderer(TEMPLATE).render(bootstrap, values, {}))
    executor.prepare()
    passes = Passes(
        TemplateFile(TEMPLATE, 1.0, clock),
        values,
        {},
        failover,
        overrides,
        executor,
        bus.emit,
        print,
        lambda _e: None,
        clock,
    )

    def one_pass() -> None:
        now = clock()
        timeline = Timeline(now, now, clock)
        timeline.mark("wait")
        _outcome, error = passes.run(followed.state(), timeline)
        assert error is None, error

    t = time.perf_counter()
    for name in names:
        followed.views[name] = convert(name, entries[name], passing_only=True).service
    converted = time.perf_counter() - t
    t = time.perf_counter()
    one_pass()
    first = time.perf_counter() - t
    first_peak = tracemalloc.get_traced_memory()[1] if args.memory else 0
    first_line = timed[0].line() if timed else ""
    del timed[:]
    profile = cProfile.Profile() if args.profile else None
    cpu0 = time.process_time()
    for c in range(args.changes):
        name = names[(c * 7) % services]
        moving = entry(instances + c, name, 10_000 + c)
        for body in (entries[name] + [moving], entries[name]):
            followed.views[name] = convert(name, body, passing_only=True).service
            if profile is not None:
                profile.enable()
            one_pass()
            if profile is not None:
                profile.disable()
    cpu = (time.process_time() - cpu0) / (2 * args.changes)
    print(
        f"{instances} instances, {services} services: convert {converted:.2f} s, first pass {first:.2f} s "
        f"({first_line})"
    )
    per_stage: dict[str, list[float]] = {}
    for event in timed:
        for stage, seconds in event.stages:
            per_stage.setdefault(stage, []).append(seconds * 1000)
        per_stage.setdefault("total", []).append(event.total * 1000)
    for stage, ms in per_stage.items():
        if stage in ("convert", "wait"):
            continue
        p99 = sorted(ms)[max(0, round(0.99 * len(ms)) - 1)]
        print(f"  {stage:9} p50 {statistics.median(ms):7.2f} ms   p99 {p99:7.2f} ms")
    print(
        f"  CPU per change {cpu * 1000:.2f} ms; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    if profile is not None:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
    if args.memory:
        del entries  # the catalog's answers: not the watcher's to keep
        stats = tracemalloc.take_snapshot().statistics("lineno")
        print(
            f"  traced: peak {first_peak / 1e6:.0f} MB in the first pass; {sum(s.size for s in stats) / 1e6:.0f} MB held, of which:"
        )
        for stat in stats[:20]:
            print(f"  {stat.size / 1e6:7.1f} MB {stat.count:8d} {stat.traceback[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
