"""Shared pieces of the benchmarks: tool check, progress lines, the probe client, webapp servers,
change driver, statistics."""

from __future__ import annotations

import bisect
import contextlib
import json
import multiprocessing
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
from typing import Any

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


class ProbeStream:
    """Probes that run on their own, in a process of their own, independent of the changes being timed.

    A probe started only after the Consul API call returns is blind while the call is in flight:
    a removal already live by then reads 0 ms.  A probe thread in this process would be as blind
    (it waits for the GIL while the call runs), so the probes run in a child process that stamps
    each with ``time.perf_counter`` (CLOCK_MONOTONIC, the same clock in every process) and sends
    (start, end, value) back; a change is timed against them from the moment its call started.
    ``probe(target)`` returns what one probe saw of ``target`` (set with :meth:`aim`).  Bounded:
    the child stops after ``limit`` seconds, on :meth:`stop`, or when this process goes away.
    """

    def __init__(self, probe: Callable[[object], object], limit: float = 3600.0, pause: float = 0.0) -> None:
        self._probe, self._limit, self._pause = probe, limit, pause
        self.samples: list[tuple[float, float, object]] = []
        self._cond = threading.Condition()
        self._samples_in, samples_out = multiprocessing.Pipe(duplex=False)
        aims_in, self._aims_out = multiprocessing.Pipe(duplex=False)
        self._child = multiprocessing.get_context("fork").Process(
            target=_probe_stream, args=(probe, samples_out, aims_in, limit, pause), name="probe-stream", daemon=True
        )
        self._reader = threading.Thread(target=self._read, name="probe-stream-reader", daemon=True)

    def __enter__(self) -> ProbeStream:
        self._child.start()
        self._reader.start()
        with self._cond:
            self._cond.wait_for(lambda: self.samples, timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def aim(self, target: object) -> None:
        """What the next probes look at (the child takes it before its next probe)."""
        self._aims_out.send(target)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._aims_out.send(_STOP)
        self._child.join(10)
        if self._child.is_alive():
            self._child.kill()
        self._reader.join(10)

    def _read(self) -> None:
        while True:
            try:
                sample = self._samples_in.recv()
            except (EOFError, OSError):
                return
            with self._cond:
                self.samples.append(sample)
                if len(self.samples) > 200_000:  # bounded memory: keep the recent half
                    del self.samples[:100_000]
                self._cond.notify_all()

    def _since(self, t0: float) -> list[tuple[float, float, object]]:
        """The probes that ended at or after ``t0`` (the samples are in order of their end)."""
        return self.samples[bisect.bisect_left(self.samples, t0, key=lambda s: s[1]) :]

    def seen(self, t0: float, hit: Callable[[object], bool], deadline: float = DEADLINE) -> float:
        """An add: seconds from ``t0`` to the end of the first probe that saw it."""
        found: list[float] = []

        def first() -> bool:
            found[:] = [end for start, end, value in self._since(t0) if hit(value)][:1]
            return bool(found)

        with self._cond:
            if not self._cond.wait_for(first, timeout=deadline):
                raise TimeoutError(f"never seen within {deadline}s")
        return found[0] - t0

    def gone(self, t0: float, hit: Callable[[object], bool], quiet: float, deadline: float = DEADLINE) -> float:
        """A removal: seconds from ``t0`` to the end of the last probe that still saw it (0 when none after
        ``t0`` did), once no probe has seen it for ``quiet`` seconds."""
        last: list[float] = [t0]

        def settled() -> bool:
            since = self._since(t0)
            hits = [end for start, end, value in since if hit(value)]
            last[0] = hits[-1] if hits else t0
            return bool(since) and since[-1][0] - last[0] > quiet

        with self._cond:
            if not self._cond.wait_for(settled, timeout=deadline):
                raise TimeoutError(f"still seen after {deadline}s")
        return last[0] - t0


_STOP = "stop"


def _probe_stream(probe: Callable[[object], object], out: Any, aims: Any, limit: float, pause: float) -> None:
    """The child of a :class:`ProbeStream`: probe, stamp, send, until told to stop (or ``limit`` seconds)."""
    target: object = None
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        while aims.poll():
            target = aims.recv()
            if target == _STOP:
                return
        t = time.perf_counter()
        value = probe(target)
        out.send((t, time.perf_counter(), value))
        if pause:
            time.sleep(pause)


KINDS = ("add (register)", "remove (check fails)", "add (check passes)", "remove (deregister)")
ADDS, REMOVALS = (KINDS[0], KINDS[2]), (KINDS[1], KINDS[3])


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
    stream = ProbeStream(lambda _target: probe(lb)) if observe is None else None
    if stream is not None:
        stream.__enter__()
    try:
        _drive(consul, spare_port, changes, progress, results, stream, observe, record)
    finally:
        if stream is not None:
            stream.stop()
    return results


def _drive(
    consul: ConsulAgent,
    spare_port: int,
    changes: int,
    progress: Callable[[int], None],
    results: dict[str, list[float]],
    stream: ProbeStream | None,
    observe: Callable[[float], float] | None,
    record: list[tuple[float, float]] | None,
) -> None:
    def moving(value: object) -> bool:
        return value == "moving"

    def until_seen(t0: float) -> float:
        assert stream is not None
        return stream.seen(t0, moving)

    def until_gone(t0: float) -> float:
        assert stream is not None
        return stream.gone(t0, moving, QUIET)

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
        steps: list[tuple[str, Callable[[], None], Callable[[float], float]]] = [
            (KINDS[0], lambda body=body: consul.put("/v1/agent/service/register", body), until_seen),
            (KINDS[1], lambda check=check: consul.put(f"/v1/agent/check/fail/{check}"), until_gone),
            (KINDS[2], lambda check=check: consul.put(f"/v1/agent/check/pass/{check}"), until_seen),
            (KINDS[3], lambda sid=sid: consul.put(f"/v1/agent/service/deregister/{sid}"), until_gone),
        ]
        for kind, act, wait in steps:
            t0 = time.perf_counter()
            act()
            results[kind].append(observe(t0) if observe else wait(t0))
            if record is not None:
                record.append((t0, results[kind][-1]))
            rest = PACE - (time.perf_counter() - t0)
            if rest > 0:
                time.sleep(rest)
        progress(4 * (cycle + 1))


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
