"""Shared pieces of the benchmarks: tool check, progress lines, the probe client, webapp servers,
change driver, statistics."""

from __future__ import annotations

import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from discovery.consul.agent import find_consul
from discovery.errors import ConfigError
from testkit import ConsulAgent
from webapp.app import Server, make_server

# What installs each external tool (scripts/install-deps.sh, scripts/install-bench-deps.sh; both run by make bench).
INSTALLED_BY = {"haproxy": "make deps", "consul": "make deps", "wrk": "make bench-deps (apt-get install wrk)"}


def require_tools(*tools: str) -> None:
    """Before any phase runs: every external tool there, else one line on stderr and exit 1."""
    missing = []
    for tool in tools:
        if tool == "consul":
            try:
                find_consul()
            except ConfigError:
                missing.append(tool)
        elif shutil.which(tool) is None:
            missing.append(tool)
    if missing:
        fixes = sorted({INSTALLED_BY.get(t, f"apt-get install {t}") for t in missing})
        print(f"bench: error: {', '.join(missing)} not installed; run {' and '.join(fixes)} first", file=sys.stderr)
        raise SystemExit(1)


CONSOLE = Console(stderr=True)


@contextmanager
def phase(description: str, total: int, every: float = 0.1) -> Iterator[Callable[[int], None]]:
    """Progress of one phase, as ``update(done)``: on a terminal one line updated in place (rich);
    otherwise a plain line each time another ``every`` of ``total`` is done, and one at the end."""
    t0 = time.perf_counter()
    if CONSOLE.is_terminal:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=CONSOLE) as progress:
            task = progress.add_task(description, total=total)
            yield lambda done: progress.update(task, completed=done)
        return
    step, printed = max(1, round(total * every)), [0]

    def update(done: int) -> None:
        if done >= printed[0] + step or (done >= total > printed[0]):
            printed[0] = done
            print(f"{description}: {done}/{total} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    yield update


QUIET = 0.3  # a removal is done once the instance has not answered for this long
PACE = 0.25  # at most one change every 250 ms, the same for every contender
DEADLINE = 15.0  # give up on one change after this long


def probe(port: int) -> str:
    """One request through the load balancer on a fresh connection; returns X-Instance (or the status line)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError as exc:
        return f"error: {exc.__class__.__name__}"
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "x-instance":
            return value.strip()
    return head.split("\r\n", 1)[0]


def probe_cost(port: int, n: int = 200) -> float:
    """Median seconds per probe, to report the client's own overhead."""
    costs = []
    for _ in range(n):
        t = time.perf_counter()
        probe(port)
        costs.append(time.perf_counter() - t)
    return statistics.median(costs)


def serve(instance: str, address: str = "127.0.0.1") -> tuple[Server, int]:
    """A webapp in a thread.  Each instance gets its own loopback address (127.0.0.N), as
    containers have their own IPs; HAProxy 2.6's DNS discovery cannot tell apart SRV records
    that share a target host name, and Consul names targets after the address."""
    server = make_server(address, 0, instance)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server, int(server.server_address[1])


def until_seen(lb: int, instance: str, t0: float) -> float:
    while time.perf_counter() - t0 < DEADLINE:
        if probe(lb) == instance:
            return time.perf_counter() - t0
    raise TimeoutError(f"{instance} never answered within {DEADLINE}s")


def until_gone(lb: int, instance: str, t0: float) -> float:
    last_hit = t0
    while time.perf_counter() - t0 < DEADLINE:
        now = time.perf_counter()
        if probe(lb) == instance:
            last_hit = now
        elif now - last_hit > QUIET:
            return last_hit - t0
    raise TimeoutError(f"{instance} still answered after {DEADLINE}s")


KINDS = ("add (register)", "remove (check fails)", "add (check passes)", "remove (deregister)")


MOVING_ADDRESS = "127.0.0.9"


def cycles(changes: int) -> int:
    """Whole cycles of the four kinds of change: ``4 * cycles(n)`` changes are made for ``n`` asked."""
    return max(1, changes // 4)


def drive_changes(
    consul: ConsulAgent,
    lb: int,
    spare_port: int,
    changes: int,
    progress: Callable[[int], None] = lambda n: None,
    observe: Callable[[float], float] | None = None,
    record: list[tuple[float, float]] | None = None,
) -> dict[str, list[float]]:
    """Cycle the four kinds of change on one instance ("moving"); return seconds per change, by kind.

    ``progress`` gets the count of changes done, up to ``4 * cycles(changes)``.  ``observe``, when
    given, replaces the probes through the load balancer: it gets the time of the API call and
    returns the seconds until the change was seen (the floor uses it).  ``record``, when given,
    gets (time of the API call, seconds to seen) for every change (for the latency budget)."""
    results: dict[str, list[float]] = {k: [] for k in KINDS}
    for cycle in range(cycles(changes)):
        sid = f"moving-{cycle}"
        check = f"service:{sid}"
        body = {
            "Name": "web",
            "ID": sid,
            "Address": MOVING_ADDRESS,
            "Port": spare_port,
            "Check": {"CheckID": check, "TTL": "1h", "Status": "passing"},
        }
        steps: list[tuple[str, Callable[[], None], Callable[[int, str, float], float]]] = [
            (KINDS[0], lambda: consul.put("/v1/agent/service/register", body), until_seen),
            (KINDS[1], lambda: consul.put(f"/v1/agent/check/fail/{check}"), until_gone),
            (KINDS[2], lambda: consul.put(f"/v1/agent/check/pass/{check}"), until_seen),
            (KINDS[3], lambda: consul.put(f"/v1/agent/service/deregister/{sid}"), until_gone),
        ]
        for kind, act, wait in steps:
            t0 = time.perf_counter()
            act()
            results[kind].append(observe(t0) if observe else wait(lb, "moving", t0))
            if record is not None:
                record.append((t0, results[kind][-1]))
            rest = PACE - (time.perf_counter() - t0)
            if rest > 0:
                time.sleep(rest)
        progress(4 * (cycle + 1))
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def summarize(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "max": max(ms),
        "mean": statistics.fmean(ms),
    }


@dataclass
class Load:
    """wrk through the load balancer, fresh connection per request, bounded in time; stopped early with SIGINT."""

    port: int
    seconds: int = 600
    connections: int = 8
    proc: subprocess.Popen[str] | None = None
    result: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{self.connections}",
                f"-d{self.seconds}s",
                "--latency",
                "-H",
                "Connection: close",
                f"http://127.0.0.1:{self.port}/",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(self) -> dict[str, float]:
        assert self.proc is not None
        self.proc.send_signal(2)
        out, _ = self.proc.communicate(timeout=30)
        self.result = parse_wrk(out)
        return self.result

    def close(self) -> None:
        """Never leave wrk running (a phase that failed before :meth:`stop`)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=30)


def parse_wrk(out: str) -> dict[str, float]:
    def num(pattern: str) -> float:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else 0.0

    socket_errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return {
        "requests": num(r"(\d+) requests in"),
        "seconds": num(r"requests in ([\d.]+)s"),
        "rps": num(r"Requests/sec:\s+([\d.]+)"),
        "non_2xx": num(r"Non-2xx or 3xx responses: (\d+)"),
        "socket_errors": float(socket_errors),
    }


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def draw(plot: str, results: Path, png: Path) -> None:
    """Draw ``bench.plots.<plot>`` from the results just written; one line instead when matplotlib
    (the ``bench`` extra) is missing."""
    try:
        from bench import plots
    except ImportError as exc:
        print(f"bench: no plot ({exc}); run make bench-deps", file=sys.stderr)
        return
    print(f"plot: {getattr(plots, plot)(results, png)}", file=sys.stderr)
