#!/usr/bin/env python3
"""PNG plots of the benchmark results, drawn from the JSON files in bench/results/.

- ``plot_compare``: convergence of every contender of bench/compare.py and of the floor
  (idle phase, Consul API call to the change seen through HAProxy): an ECDF per contender
  on a log ms axis when the JSON holds the samples (``convergence_samples_ms``, written
  since the plots exist), otherwise p50 / p95 / p99 / max per contender; p50 and p99 marked.
- ``plot_scale``: the cost per change across sizes of bench/scale.py: change→applied p50
  and p99, HAProxy's own reload at that size, watcher CPU per change and watcher peak RSS,
  against the number of instances (log-log).
- ``plot_fanin``: bench/fanin.py, when its results exist: change→applied and Consul
  requests/s per server against the number of watchers, with and without ``--stale``.
  Expected shape (a list of rows, or ``{"rows": [...]}``), rows missing a figure skipped::

      {"watchers": 8, "stale": true, "change_to_applied_ms": {"p50": .., "p99": ..},
       "requests_per_s_per_server": ..}

Usage: .venv/bin/python bench/plots.py [--results bench/results] [--out docs/img]
(needs matplotlib: make bench-deps).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench/results"
IMG = REPO / "docs/img"

FLOOR = "floor: raw blocking query + one probe"
TARGET_P99_MS = 60.0  # issue 20: change→applied p99 at 50,000 instances
TARGET_RSS_MB = 250.0  # issue 13: peak RSS at 50,000 instances


def _plain(value: float, _pos: object = None) -> str:
    """Tick labels as plain numbers (1, 10, 100, 1,000), not powers of ten."""
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _labelled(ax: Any, xs: list[float], ys: list[float], style: str, fmt: str = "{:,.0f}", **kw: Any) -> None:
    """A line with each point's value written next to it."""
    ax.plot(xs, ys, style, **kw)
    for x, y in zip(xs, ys, strict=False):
        ax.annotate(
            fmt.format(y),
            (x, y),
            xytext=(5, -11),
            textcoords="offset points",
            fontsize=7,
            color=kw.get("color", "black"),
        )


def _ecdf(ax: Any, samples: list[float], color: str, label: str) -> None:
    xs = sorted(samples)
    ys = [(i + 1) / len(xs) for i in range(len(xs))]
    ax.step(xs, ys, where="post", color=color, label=label, linewidth=1.6)


def plot_compare(results: Path = RESULTS / "compare.json", out: Path = IMG / "compare.png") -> Path:
    """Convergence per contender and the floor; returns the PNG's path."""
    data = _load(results)
    rows = [(FLOOR, data["floor"])] if "floor" in data else []
    rows += [(name, r) for name, r in data.items() if name != "floor" and "convergence_ms" in r]
    failed = [name for name, r in data.items() if "failed" in r]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    n = max(r["convergence_ms"]["n"] for _, r in rows)
    with_samples = all("convergence_samples_ms" in r for _, r in rows)
    fig, ax = plt.subplots(figsize=(10, 1.6 + 0.75 * len(rows)) if not with_samples else (10, 5.5))
    if with_samples:
        for (name, r), color in zip(rows, colors, strict=False):
            c = r["convergence_ms"]
            _ecdf(ax, r["convergence_samples_ms"], color, f"{name}: p50 {c['p50']:.1f} ms, p99 {c['p99']:.1f} ms")
            ax.plot([c["p50"]], [0.5], "o", color=color, markersize=7)
            ax.plot([c["p99"]], [0.99], "D", color=color, markersize=6)
        ax.axhline(0.5, color="grey", linewidth=0.6, linestyle=":")
        ax.axhline(0.99, color="grey", linewidth=0.6, linestyle=":")
        ax.set_ylabel("fraction of changes converged")
        ax.set_ylim(0, 1.02)
        ax.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=9, title="● p50   ◆ p99", title_fontsize=9
        )
    else:  # older results: the summary only
        marks = [("p50", "o", 8), ("p95", "^", 7), ("p99", "D", 7), ("max", "x", 8)]
        for y, ((_name, r), color) in enumerate(zip(reversed(rows), reversed(colors[: len(rows)]), strict=False)):
            c = r["convergence_ms"]
            ax.hlines(y, c["p50"], c["max"], color=color, linewidth=2, alpha=0.5)
            for key, marker, size in marks:
                ax.plot([c[key]], [y], marker, color=color, markersize=size)
            ax.annotate(
                f"p50 {c['p50']:.1f}  p99 {c['p99']:.1f} ms",
                (c["p50"], y),
                xytext=(0, 9),
                textcoords="offset points",
                fontsize=8,
                ha="left",
            )
        ax.set_yticks(range(len(rows)), [name for name, _ in reversed(rows)])
        ax.set_ylim(-0.6, len(rows) - 0.2)
        for key, marker, size in marks:
            ax.plot([], [], marker, color="black", markersize=size, linestyle="none", label=key)
        ax.legend(loc="lower right", fontsize=8, ncol=4)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(FuncFormatter(_plain))
    ax.set_xlabel("Consul API call → change seen through HAProxy (ms, log scale)")
    ax.grid(True, which="both", axis="x", alpha=0.3)
    note = f"; failed: {', '.join(failed)}" if failed else ""
    ax.set_title(f"Convergence on an idle balancer, {n} changes per contender (bench/compare.py){note}", fontsize=11)
    return _save(fig, out)


def plot_scale(results: Path = RESULTS / "scale.json", out: Path = IMG / "scale.png") -> Path:
    """Cost per change across sizes; returns the PNG's path."""
    everything = sorted(_load(results), key=lambda r: r["instances"])
    # The lines: the default (auto: what fits under the agent's connection limit); points: a mode asked for.
    rows = [r for r in everything if r.get("watch_mode", "auto") == "auto"]
    per_service = [r for r in everything if r.get("watch_mode", "auto") != "auto"]
    asked = f"--watch-mode {per_service[0]['watch_mode']}" if per_service else ""
    xs = [r["instances"] for r in rows]
    fig, (lat, cpu, rss) = plt.subplots(1, 3, figsize=(15, 4.8))
    _labelled(
        lat, xs, [r["change_to_applied_ms"]["p50"] for r in rows], "o-", color="tab:blue", label="change→applied p50"
    )
    _labelled(
        lat, xs, [r["change_to_applied_ms"]["p99"] for r in rows], "D-", color="tab:orange", label="change→applied p99"
    )
    reload_rows = [r for r in rows if "haproxy_reload_s" in r]
    if reload_rows:
        _labelled(
            lat,
            [r["instances"] for r in reload_rows],
            [1000 * r["haproxy_reload_s"] for r in reload_rows],
            "s--",
            color="grey",
            label="HAProxy's own reload, no disco (median)",
        )
    if per_service:
        px = [r["instances"] for r in per_service]
        _labelled(
            lat,
            px,
            [r["change_to_applied_ms"]["p99"] for r in per_service],
            "*",
            color="tab:red",
            markersize=10,
            label=f"p99, {asked}",
        )
        _labelled(
            cpu,
            px,
            [r["cpu_per_change_ms"] for r in per_service],
            "*",
            color="tab:red",
            markersize=10,
            label=asked,
        )
        _labelled(
            rss,
            px,
            [r["peak_rss_mb"] for r in per_service],
            "*",
            color="tab:red",
            markersize=10,
            label=asked,
        )
    lat.axhline(TARGET_P99_MS, color="red", linewidth=0.8, linestyle=":", label="target p99 at 50,000 (60 ms)")
    lat.set_ylabel("ms (log scale)")
    lat.set_title("Consul change → HAProxy's runtime API shows it")
    _labelled(cpu, xs, [r["cpu_per_change_ms"] for r in rows], "o-", color="tab:green", label="watcher CPU per change")
    cpu.set_ylabel("CPU ms per change (log scale)")
    cpu.set_title("disco watch: CPU per change")
    _labelled(rss, xs, [r["peak_rss_mb"] for r in rows], "o-", color="tab:purple", label="watcher peak RSS")
    rss.axhline(TARGET_RSS_MB, color="red", linewidth=0.8, linestyle=":", label="target at 50,000 (250 MB)")
    rss.set_ylabel("MB (log scale)")
    rss.set_title("disco watch: peak RSS")
    labels = [f"{r['instances']:,}\n({r['services']:,} svc)" for r in rows]
    for ax in (lat, cpu, rss):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(xs, labels)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(_plain))
        ax.set_xlabel("instances (services)")
        ax.grid(True, which="major", alpha=0.3)
        ax.margins(x=0.12, y=0.12)
        ax.legend(fontsize=8, loc="center left" if ax is rss else "upper left")
    highest = max(r["change_to_applied_ms"][q] for r in everything for q in ("p50", "p99"))
    lat.set_ylim(top=max(TARGET_P99_MS, highest) * 12)  # room for the legend above the lines
    rss.set_ylim(top=max(TARGET_RSS_MB, *(r["peak_rss_mb"] for r in everything)) * 1.3)
    counts = ", ".join(str(r["change_to_applied_ms"]["n"]) for r in everything)
    fig.suptitle(
        f"bench/scale.py: disco watch with live apply at {len(rows)} sizes (log-log; changes measured: {counts})",
        fontsize=12,
    )
    return _save(fig, out)


def plot_fanin(results: Path = RESULTS / "fanin.json", out: Path = IMG / "fanin.png") -> Path | None:
    """Change→applied and Consul load per server against watchers, with and without --stale;
    None (and one line on stderr) when there are no results."""
    if not results.exists():
        print(f"plots: no {results.name}, no fan-in plot (bench/fanin.py writes it)", file=sys.stderr)
        return None
    data = _load(results)
    rows = data.get("phases", data.get("rows", [])) if isinstance(data, dict) else data
    for row in rows:  # bench/fanin.py's phases: the leader's work, its own reads and the RPCs it serves
        leader = next((s for s in row.get("servers", ()) if s.get("role") == "leader"), None)
        if leader is not None and "requests_per_s_per_server" not in row:
            row["requests_per_s_per_server"] = leader["http_reads_per_s"] + leader["rpc_per_s"]
    needed = ("watchers", "change_to_applied_ms", "requests_per_s_per_server")
    rows = sorted((r for r in rows if all(k in r for k in needed)), key=lambda r: r["watchers"])
    if not rows:
        print(f"plots: {results.name} has no rows with {', '.join(needed)}; no fan-in plot", file=sys.stderr)
        return None
    fig, (lat, load) = plt.subplots(1, 2, figsize=(12, 4.8))
    for stale, style in ((False, "-"), (True, "--")):
        part = [r for r in rows if bool(r.get("stale")) == stale]
        if not part:
            continue
        xs, mode = [r["watchers"] for r in part], "--stale" if stale else "default consistency"
        lat.plot(
            xs, [r["change_to_applied_ms"]["p50"] for r in part], "o" + style, color="tab:blue", label=f"p50, {mode}"
        )
        lat.plot(
            xs, [r["change_to_applied_ms"]["p99"] for r in part], "D" + style, color="tab:orange", label=f"p99, {mode}"
        )
        load.plot(xs, [r["requests_per_s_per_server"] for r in part], "o" + style, color="tab:green", label=mode)
    lat.set_ylabel("change→applied, ms (log scale)")
    lat.set_yscale("log")
    lat.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    lat.yaxis.set_minor_locator(NullLocator())
    lat.yaxis.set_major_formatter(FuncFormatter(_plain))
    lat.set_title("Consul change → applied in every watcher")
    load.set_ylabel("leader: HTTP reads + RPCs served, per s")
    load.set_title("Load on the Consul leader")
    for ax in (lat, load):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(_plain))
        ax.set_xlabel("watchers (log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("bench/fanin.py: many watchers on one Consul cluster", fontsize=12)
    return _save(fig, out)


def _save(fig: Any, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="where compare.json, scale.json are")
    parser.add_argument("--out", type=Path, default=IMG, help="where the PNGs go")
    args = parser.parse_args()
    drawn = 0
    for name, plot in (("compare", plot_compare), ("scale", plot_scale), ("fanin", plot_fanin)):
        source = args.results / f"{name}.json"
        if name != "fanin" and not source.exists():
            print(f"plots: no {source}; run bench/{name}.py first", file=sys.stderr)
            continue
        if (png := plot(source, args.out / f"{name}.png")) is not None:
            print(png)
            drawn += 1
    return 0 if drawn else 1


if __name__ == "__main__":
    sys.exit(main())
