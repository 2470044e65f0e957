"""disco's latency budget: where each change's milliseconds go, stage by stage.

The watcher logs one ``timeline`` line per pass at debug level
(:mod:`discovery.pipeline.timeline`): when Consul's answer arrived, then how long
each stage took.  The benchmark knows when it made each change (the Consul API
call) and when the probe through HAProxy saw it; both clocks are
``CLOCK_MONOTONIC`` (``time.perf_counter`` and ``time.monotonic`` on Linux), so
each change is matched to the first pass whose answer arrived after it, and its
end-to-end time splits into:

- ``consul``: API call -> the blocking query returned (Consul's part, the floor's too);
- the watcher's stages (convert, wait, state, render, decide, write, validate,
  install, runtime, readback; reload on the reload path);
- ``probe``: what is left, until the probe through HAProxy saw the change
  (HAProxy taking the change, the probe's own cost, and for removals the QUIET
  rule of bench/lib.py, which can make it negative: a removed server stops
  answering before the read-back is over).
"""

from __future__ import annotations

import re
from pathlib import Path

from discovery.pipeline.timeline import STAGES

LINE = re.compile(r"timeline answered_at=(?P<at>[\d.]+) (?P<stages>.*?) total=(?P<total>[\d.]+)")


def read_timelines(log: Path) -> list[tuple[float, dict[str, float], float]]:
    """(answered_at in seconds, ms per stage, total ms) for every pass the log shows."""
    out = []
    for match in LINE.finditer(log.read_text(errors="replace")):
        stages = {k: float(v) for k, v in (part.split("=") for part in match["stages"].split())}
        out.append((float(match["at"]), stages, float(match["total"])))
    return out


def split(
    changes: list[tuple[float, float]], timelines: list[tuple[float, dict[str, float], float]]
) -> dict[str, list[float]]:
    """Seconds per stage for every change ((API call time, seconds to seen)) a pass can be matched to
    (seconds, as bench.lib.summarize expects)."""
    per_stage: dict[str, list[float]] = {name: [] for name in ("consul", *STAGES, "probe", "end to end")}
    ordered = sorted(timelines)
    for t0, seconds in changes:
        match = next((t for t in ordered if t0 <= t[0] <= t0 + seconds), None)
        if match is None:
            continue
        at, stages, total = match
        consul = at - t0
        per_stage["consul"].append(consul)
        for stage, ms in stages.items():
            per_stage.setdefault(stage, []).append(ms / 1000)
        per_stage["probe"].append(seconds - consul - total / 1000)
        per_stage["end to end"].append(seconds)
    return {k: v for k, v in per_stage.items() if v}


def table(columns: dict[str, dict[str, dict[str, float]]], digits: int = 2) -> str:
    """p50 / p99 per stage, one pair of columns per entry of ``columns`` (label -> summarized budget), in ms."""
    stages = list(dict.fromkeys(stage for budget in columns.values() for stage in budget))
    lines = [
        "| stage | " + " | ".join(f"{label} p50 | {label} p99" for label in columns) + " |",
        "|---|" + "---:|---:|" * len(columns),
    ]
    for stage in stages:
        cells = [
            f"{b['p50']:.{digits}f} | {b['p99']:.{digits}f}" if (b := budget.get(stage)) else "- | -"
            for budget in columns.values()
        ]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
