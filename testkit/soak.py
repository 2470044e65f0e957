"""The system the soak runs: three Consul servers and a client agent on loopback, webapps, HAProxy
(master-worker, runtime API) and ``disco watch`` with live apply, as real processes; the watcher
reaches its agent through a :class:`~testkit.proxy.HalfOpenProxy`, and its output directory is a
small tmpfs when we may mount one (root), so the disk can be filled.

Registrations go through the client agent's API (as ``disco register`` does), each with an HTTP
check on its webapp's ``/health``; a webapp's fail file makes every instance on it unhealthy.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from discovery.consul.agent import find_consul
from discovery.haproxy.render import DEFAULT_TEMPLATE

from .cluster import ConsulCluster
from .ports import take_port
from .procs import DISCO, Proc, wait_until, webapp_command
from .proxy import HalfOpenProxy

__all__ = ["SERVICES", "ClientAgent", "SoakStack"]

#: Service -> its route tag.  ``steady`` is never churned: it always has a healthy instance.
SERVICES = {
    "web": "urlprefix-/web",
    "api": "urlprefix-/api strip=/api",
    "shop": "urlprefix-/shop",
    "steady": "urlprefix-/steady",
}
WEBAPPS = 6  # webapps 0 and 1 are never made sick (steady's instances live there)
BLOCKING_WAIT = 10.0  # the watcher's --blocking-wait: a half-open connection is noticed within ~16 s
GATE_GRACE = 10.0


class ClientAgent:
    """A Consul client agent joined to a :class:`ConsulCluster`; restartable, with or without its data."""

    def __init__(self, workdir: Path, cluster: ConsulCluster) -> None:
        self.dir = workdir / "client"
        self.dir.mkdir(parents=True)
        self.http = take_port()
        self.config = self.dir / "consul.json"
        self.config.write_text(
            json.dumps(
                {
                    "node_name": "client",
                    "server": False,
                    "bind_addr": "127.0.0.1",
                    "client_addr": "127.0.0.1",
                    "data_dir": str(self.dir / "data"),
                    "log_level": "WARN",
                    "retry_join": [f"127.0.0.1:{s.serf}" for s in cluster.servers],
                    "retry_interval": "1s",
                    "leave_on_terminate": True,
                    "disable_update_check": True,
                    "ports": {"http": self.http, "dns": -1, "grpc": -1, "serf_lan": take_port(), "serf_wan": -1},
                }
            )
        )
        self.binary = find_consul(None)
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def start(self) -> None:
        self.proc = Proc([self.binary, "agent", "-config-file", str(self.config)], self.dir / "consul.log")
        wait_until(self.joined, 60, interval=0.2, what="the client agent joined with a leader")

    def joined(self) -> bool:
        answer = requests.get(f"{self.url}/v1/status/leader", timeout=2)
        return answer.status_code == 200 and bool(answer.json())

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def restart_without_data(self) -> None:
        self.stop()
        shutil.rmtree(self.dir / "data", ignore_errors=True)
        self.start()

    def put(self, path: str, body: Any = None) -> None:
        response = requests.put(f"{self.url}{path}", data=json.dumps(body) if body is not None else None, timeout=5)
        response.raise_for_status()


@dataclass
class Paths:
    root: Path

    @property
    def out_dir(self) -> Path:
        return self.root / "out"

    @property
    def output(self) -> Path:
        return self.out_dir / "haproxy.cfg"

    @property
    def template(self) -> Path:
        return self.root / "haproxy.cfg.j2"

    @property
    def master(self) -> Path:
        return self.root / "master.sock"

    @property
    def admin(self) -> Path:
        return self.root / "admin.sock"


class SoakStack:
    """Everything the soak starts, and the handles its faults need."""

    def __init__(self, workdir: Path) -> None:
        self.paths = Paths(workdir)
        self.lb_port, self.stats_port, self.listen_port = take_port(), take_port(), take_port()
        self.cluster = ConsulCluster(workdir / "consul")
        self.agent = ClientAgent(workdir, self.cluster)
        self.proxy: HalfOpenProxy | None = None
        self.webapps: list[tuple[int, Path]] = []  # (port, fail file)
        self.procs: list[Proc] = []
        self.haproxy: Proc | None = None
        self.watch: Proc | None = None
        self.tmpfs = False
        self.watch_starts = 0

    # --- start and stop -------------------------------------------------------------------
    def start(self) -> None:
        self.paths.out_dir.mkdir(parents=True)
        self.tmpfs = self._mount_tmpfs()
        shutil.copy(DEFAULT_TEMPLATE, self.paths.template)
        self.cluster.start()
        self.agent.start()
        self.proxy = HalfOpenProxy(self.agent.http)
        self.proxy.start()
        for n in range(WEBAPPS):
            port, fail = take_port(), self.paths.root / f"webapp-{n}.fail"
            self.procs.append(
                Proc(
                    webapp_command(port, f"app-{n}", fail),
                    self.paths.root / f"webapp-{n}.log",
                )
            )
            self.webapps.append((port, fail))

    def start_balancer(self) -> None:
        """First config by ``disco watch --once``, then HAProxy, then the watcher."""
        once = Proc(self.watch_argv("--once"), self.paths.root / "watch-once.log")
        code = once.popen.wait(120)
        once.stop()
        if code != 0:
            raise AssertionError(f"disco watch --once failed:\n{once.output()}")
        self.start_haproxy()
        self.start_watch()

    def close(self) -> None:
        for proc in (self.watch, self.haproxy):
            if proc is not None:
                proc.stop()
        for proc in reversed(self.procs):
            proc.stop()
        if self.proxy is not None:
            self.proxy.stop()
        self.agent.stop()
        self.cluster.stop()
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.paths.out_dir)], check=False, capture_output=True)

    def _mount_tmpfs(self) -> bool:
        """A 1 MB tmpfs under the output (the full-disk fault needs one); False when we may not mount."""
        try:
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(self.paths.out_dir)],
                capture_output=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0

    # --- HAProxy --------------------------------------------------------------------------
    def start_haproxy(self) -> None:
        self.haproxy = Proc(
            ["haproxy", "-W", "-S", f"{self.paths.master},mode,600", "-f", str(self.paths.output)],
            self.paths.root / "haproxy.log",
        )
        wait_until(self.haproxy_answers, 20, what="HAProxy's master CLI")

    def haproxy_answers(self) -> bool:
        from discovery.errors import ReloadError
        from discovery.haproxy.master import MasterSocket

        try:
            MasterSocket(self.paths.master).state()
        except ReloadError:
            return False
        return self.paths.admin.exists()

    def kill_haproxy(self) -> None:
        """SIGKILL to the master and its workers (one process group), as an OOM kill or a crash would."""
        if self.haproxy is not None:
            self.haproxy.signal(signal.SIGKILL)
            self.haproxy.stop()
            self.haproxy = None

    # --- the watcher ----------------------------------------------------------------------
    @property
    def values(self) -> dict[str, str]:
        """The template values the watcher renders with (``--set``, and the admin socket)."""
        return {
            "frontend_port": str(self.lb_port),
            "stats_port": str(self.stats_port),
            "bind_address": "127.0.0.1",
            "admin_socket": str(self.paths.admin),
        }

    def watch_argv(self, *extra: str) -> list[str]:
        services = [arg for name in SERVICES for arg in ("--service", name)]
        assert self.proxy is not None
        return [
            *DISCO,
            "watch",
            *services,
            "--output",
            str(self.paths.output),
            "--template",
            str(self.paths.template),
            "--consul-addr",
            self.proxy.url,
            "--runtime-socket",
            str(self.paths.admin),
            "--drain-grace",
            "2s",
            "--blocking-wait",
            f"{BLOCKING_WAIT:g}s",
            "--gate-grace",
            f"{GATE_GRACE:g}s",
            *(
                arg
                for key in ("frontend_port", "stats_port", "bind_address")
                for arg in ("--set", f"{key}={self.values[key]}")
            ),
            *extra,
        ]

    def start_watch(self) -> None:
        self.watch_starts += 1
        self.watch = Proc(
            self.watch_argv("--master-socket", str(self.paths.master), "--listen", f"127.0.0.1:{self.listen_port}"),
            self.paths.root / "watch.log",
        )

    def kill_watch(self) -> None:
        if self.watch is not None:
            self.watch.signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.watch.popen.wait(10)
            self.watch.stop()
            self.watch = None

    def watch_log_size(self) -> int:
        log = self.paths.root / "watch.log"
        return log.stat().st_size if log.exists() else 0

    def wait_for_log(self, pattern: str, since: int, timeout: float) -> bool:
        """Has the watcher logged ``pattern`` after byte ``since``, within ``timeout``?"""
        log = self.paths.root / "watch.log"
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with open(log, "rb") as fh:
                fh.seek(since)
                if pattern.encode() in fh.read():
                    return True
            time.sleep(0.002)
        return False

    def watch_log_tail(self, lines: int) -> str:
        log = self.paths.root / "watch.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        kept = [line for line in text.splitlines() if "discovery.consul.watch" not in line]
        return "\n".join(kept[-lines:])
