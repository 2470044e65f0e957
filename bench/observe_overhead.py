#!/usr/bin/env python3
"""What ``disco watch --listen`` (metrics, health) costs in convergence, measured in one run.

One Consul dev agent; two HAProxies, each with its own watcher on the live path (runtime
API): one plain, one with ``--listen`` (and a scraper reading /metrics every second, as
Prometheus would).  Changes alternate between the two (add an instance, remove it, ...),
one at a time, 300 ms apart, so both see the same machine (one instance of each service stays
registered throughout, so a removal never empties a backend, which the sanity gate would hold).  Convergence is the time from
the Consul API call returning to HAProxy's runtime API showing the change (the new server
ready, the removed one draining), polled every 0.5 ms on the admin socket.

Usage: .venv/bin/python bench/observe_overhead.py [--changes 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import contextlib

from discovery.haproxy.runtime import RuntimeAPI
from testkit import DISCO, ConsulAgent, Proc, take_port, wait_until


class Balancer:
    def __init__(self, workdir: Path, consul: ConsulAgent, service: str, listen: str | None) -> None:
        workdir.mkdir()
        self.service, self.listen, self.procs = service, listen, []
        self.output, master = workdir / "haproxy.cfg", workdir / "master.sock"
        self.admin = workdir / "admin.sock"
        args = [
            *DISCO,
            "watch",
            "--service",
            service,
            "--output",
            str(self.output),
            "--consul-addr",
            consul.url,
            "--runtime-socket",
            str(self.admin),
            "--set",
            f"frontend_port={take_port()}",
            "--set",
            f"stats_port={take_port()}",
            "--set",
            "bind_address=127.0.0.1",
        ]
        once = Proc([*args, "--bootstrap", "--once"], workdir / "once.log")
        assert once.popen.wait(60) == 0, once.output()
        self.procs.append(
            Proc(["haproxy", "-W", "-S", f"{master},mode,600", "-f", str(self.output)], workdir / "haproxy.log")
        )
        wait_until(master.exists, 10, what="HAProxy's master socket")
        extra = ["--listen", listen] if listen else []
        self.procs.append(Proc([*args, "--master-socket", str(master), *extra], workdir / "watch.log"))
        self.api = RuntimeAPI(self.admin)

    def state(self, name: str) -> str | None:
        server = self.api.servers(self.service).get(name)
        return None if server is None else "drain" if server.draining else "maint" if server.in_maintenance else "ready"

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def measure(consul: ConsulAgent, balancer: Balancer, n: int) -> float:
    """One change; seconds until HAProxy shows it."""
    sid = f"{balancer.service}-{n // 2}"
    if n % 2 == 0:
        consul.put(
            "/v1/agent/service/register",
            {"Name": balancer.service, "ID": sid, "Address": "127.0.0.1", "Port": 20000 + n // 2},
        )
        want = "ready"
    else:
        consul.put(f"/v1/agent/service/deregister/{sid}")
        want = "drain"
    started = time.perf_counter()
    deadline = started + 10
    while time.perf_counter() < deadline:
        try:
            if balancer.state(sid) in (want, None if want == "drain" else "-"):
                return time.perf_counter() - started
        except Exception:  # noqa: S110  (a read while the socket is busy is tried again on the next poll)
            pass
        time.sleep(0.0005)
    raise RuntimeError(f"{balancer.service}: change {n} not seen within 10s")


def scrape(url: str, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=2).read()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100, help="changes per watcher (default 100)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="disco-observe-") as tmp:
        work = Path(tmp)
        consul = ConsulAgent(work)
        consul.start()
        listen = f"127.0.0.1:{take_port()}"
        for service in ("plain", "observed"):  # one instance stays, so a removal never empties a backend
            consul.put(
                "/v1/agent/service/register",
                {"Name": service, "ID": f"{service}-base", "Address": "127.0.0.1", "Port": 19999},
            )
        plain = Balancer(work / "plain", consul, "plain", None)
        observed = Balancer(work / "listen", consul, "observed", listen)
        stop = threading.Event()
        scraper = threading.Thread(target=scrape, args=(f"http://{listen}/metrics", stop), daemon=True)
        try:
            wait_until(
                lambda: urllib.request.urlopen(f"http://{listen}/readyz", timeout=1).status == 200,
                20,
                what="the observed watcher ready",
            )
            scraper.start()
            times: dict[str, list[float]] = {"without --listen": [], "with --listen": []}
            for n in range(args.changes):
                for label, balancer in (("without --listen", plain), ("with --listen", observed)):
                    times[label].append(measure(consul, balancer, n))
                    time.sleep(0.3)
            metrics = urllib.request.urlopen(f"http://{listen}/metrics", timeout=2).read().decode()
        finally:
            stop.set()
            plain.close()
            observed.close()
            consul.stop()
    print(f"{args.changes} changes each (add, remove, alternating), live path, one run\n")
    print("| watcher | p50 ms | p99 ms | max ms |\n|---|---|---|---|")
    for label, values in times.items():
        print(f"| {label} | {pct(values, 50):.1f} | {pct(values, 99):.1f} | {max(values) * 1000:.1f} |")
    for line in metrics.splitlines():
        if line.startswith(
            (
                "disco_change_to_applied_seconds_count",
                "disco_change_to_applied_seconds_sum",
                'disco_applies_total{method="live",result="success"}',
            )
        ):
            print(f"    {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
