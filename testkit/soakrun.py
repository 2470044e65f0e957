"""Run a seeded fault soak: churn and load all along, a fault at a time in a seeded random order,
and after each one the three views must agree before a deadline.  ``bench/soak.py`` and
``tests/integration/test_soak.py`` both call :func:`run_soak`.

The seed fixes the order of the faults and everything each one draws (which kill lands inside an
apply, how long Consul stays down, ...), and the stream of changes; thread timing is the
machine's, so a replay takes the same path, not the same microseconds.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .checker import wait_for_agreement
from .churn import Churn
from .faults import DEFAULT_FAULTS, FAULTS
from .load import DownWindows, Load, LoadCounts
from .procs import wait_until
from .soak import SERVICES, SoakStack

__all__ = ["SoakResult", "run_soak"]


@dataclass
class SoakResult:
    seed: int
    seconds: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    agreement: dict[str, list[float]] = field(default_factory=dict)  # kind -> seconds to agree
    divergences: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    changes: int = 0
    churn_errors: int = 0
    load: LoadCounts = field(default_factory=LoadCounts)
    unrequested_restarts: int = 0
    reloads: int = 0
    live_applies: int = 0

    @property
    def failed(self) -> bool:
        return bool(self.divergences or self.problems or self.unrequested_restarts or self.load.failed_outside)

    def table(self) -> str:
        rows = [f"seed {self.seed}, {self.seconds / 60:.1f} min", ""]
        rows.append(f"{'fault':<15} {'count':>5} {'agree p50 s':>12} {'agree max s':>12}")
        for kind in FAULTS:
            times = self.agreement.get(kind, [])
            p50 = f"{statistics.median(times):.2f}" if times else "-"
            top = f"{max(times):.2f}" if times else "-"
            skipped = f"  ({self.skipped[kind]} skipped)" if self.skipped[kind] else ""
            rows.append(f"{kind:<15} {self.faults[kind]:>5} {p50:>12} {top:>12}{skipped}")
        load = self.load
        rows += [
            "",
            f"changes in Consul: {self.changes} ({self.churn_errors} refused while the agent was away)",
            f"applies: {self.reloads} reloads, {self.live_applies} through the runtime API",
            f"requests: {load.sent} sent, {load.failed_inside} failed inside HAProxy-down windows, "
            f"{load.failed_outside} failed outside, {load.unavailable} answered 503 (no healthy server)",
            f"divergences: {len(self.divergences)}",
            f"watcher restarts nobody asked for: {self.unrequested_restarts}",
            f"other problems: {len(self.problems)}",
        ]
        rows += [f"  failed request: {f}" for f in load.failures[:10]]
        rows += [f"  problem: {p}" for p in self.problems[:10]]
        return "\n".join(rows)


class _Run:
    def __init__(self, stack: SoakStack, result: SoakResult, say: Callable[[str], None]) -> None:
        self.stack, self.result, self.say = stack, result, say

    def watcher_alive(self) -> None:
        """A watcher that exited without being asked is a failure: counted, reported, restarted."""
        watch = self.stack.watch
        if watch is not None and not watch.alive():
            self.result.unrequested_restarts += 1
            tail = "\n".join(watch.output().splitlines()[-15:])
            self.result.problems.append(f"the watcher exited ({watch.popen.returncode}) on its own:\n{tail}")
            self.say(f"watcher exited on its own, restarting; last lines:\n{tail}")
            watch.stop()
            self.stack.start_watch()

    def idle(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.watcher_alive()
            time.sleep(0.2)

    def check(self, label: str, deadline: float, since: float) -> float | None:
        stack = self.stack
        agreement = wait_for_agreement(
            lambda: next(s for s in stack.cluster.servers if s.alive()).url,
            stack.agent.url,
            list(SERVICES),
            stack.paths.output,
            stack.paths.admin,
            stack.paths.template,
            stack.values,
            deadline,
            since,
            self.watcher_alive,
        )
        if agreement.ok:
            # Nothing half-written: no temporary file left beside the output once all agree.
            left = sorted(p.name for p in stack.paths.out_dir.glob(f".{stack.paths.output.name}.*.tmp"))
            if left:
                self.result.problems.append(f"after {label}: temporary files left in the output directory: {left}")
            return agreement.seconds
        text = (
            f"seed {self.result.seed}: no agreement {deadline:.0f}s after {label}\n{agreement.report}\n"
            f"the watcher's last lines (Consul watch lines left out):\n{self.stack.watch_log_tail(40)}"
        )
        self.result.divergences.append(text)
        self.say("DIVERGENCE " + text)
        return None


def run_soak(
    workdir: Path,
    seed: int,
    seconds: float,
    say: Callable[[str], None] = print,
    kinds: Sequence[str] = DEFAULT_FAULTS,
) -> SoakResult:
    """Start everything under ``workdir``, soak for about ``seconds``, stop everything; the result."""
    result = SoakResult(seed)
    rng = random.Random(seed)
    stack = SoakStack(workdir)
    churn: Churn | None = None
    load: Load | None = None
    started = time.monotonic()
    try:
        stack.start()
        churn = Churn(stack.agent, stack.webapps, random.Random(rng.getrandbits(64)))
        churn.seed()
        wait_until(lambda: _passing_everywhere(stack), 60, interval=0.5, what="every service passing in Consul")
        stack.start_balancer()
        windows = DownWindows()
        load = Load(stack.lb_port, [f"/{s}/x" for s in SERVICES], windows)
        load.start(seconds + 900)
        threading.Thread(target=churn.run, args=(seconds + 900,), name="churn", daemon=True).start()
        run = _Run(stack, result, say)
        first = run.check("start", 60.0, time.monotonic())
        say(f"soak seed {seed}: started in {time.monotonic() - started:.0f}s, first agreement {first}")
        started = time.monotonic()
        churn.resume()
        order: list[str] = []
        while time.monotonic() - started < seconds:
            run.idle(rng.uniform(1.0, 3.0))
            if not order:
                order = list(kinds)
                rng.shuffle(order)
            kind = order.pop()
            fault_rng = random.Random(rng.getrandbits(64))
            say(f"{time.strftime('%H:%M:%S')} fault {kind} ...")
            outcome = FAULTS[kind](stack, churn, fault_rng, windows)
            churn.pause()
            if outcome.note.startswith("skipped"):
                result.skipped[kind] += 1
                churn.resume()
                continue
            result.faults[kind] += 1
            result.problems += [f"{kind}: {p}" for p in outcome.problems]
            since = outcome.since if outcome.since is not None else time.monotonic()
            took = run.check(f"{kind} ({outcome.note})", outcome.deadline, since)
            if took is not None:
                result.agreement.setdefault(kind, []).append(took)
            agreed = "never" if took is None else f"in {took:.2f}s"
            say(f"{time.strftime('%H:%M:%S')}   {kind}: {outcome.note}; agreed {agreed}")
            churn.resume()
        result.seconds = time.monotonic() - started
        result.reloads, result.live_applies = _applies(stack)
    finally:
        if churn is not None:
            churn.stop()
            result.changes, result.churn_errors = churn.changes, churn.errors
        if load is not None:
            result.load = load.stop()
        stack.close()
    return result


def _passing_everywhere(stack: SoakStack) -> bool:
    import requests

    for service in SERVICES:
        answer = requests.get(f"{stack.agent.url}/v1/health/service/{service}", params={"passing": "1"}, timeout=2)
        if not answer.json():
            return False
    return True


def _applies(stack: SoakStack) -> tuple[int, int]:
    """Reloads and live applies, from the watcher's log (every watcher of the run appends to it)."""
    log = (stack.paths.root / "watch.log").read_text(errors="replace")
    return log.count("execute: reloaded: "), log.count("execute: runtime API: ")
