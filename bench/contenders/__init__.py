"""The load balancers compared in bench/compare.py, each started on real processes.

Every contender runs HAProxy 2.6 in master-worker mode with the same global,
defaults, frontend and health-check settings; only how the backend learns about
instances differs.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from testkit import DISCO, ConsulAgent, Proc, take_port, wait_until

HERE = Path(__file__).resolve().parent

COMMON = """global
    log stdout format raw local0 notice
    maxconn 4096
    hard-stop-after 30s
    httpclient.ssl.verify none
defaults
    mode http
    log global
    option dontlognull
    option redispatch
    retries 3
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
frontend http
    bind 127.0.0.1:{lb}
    default_backend web
backend web
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
"""


@dataclass
class Contender:
    """One way of keeping HAProxy's backend in step with Consul."""

    name: str
    work: Path
    consul: ConsulAgent
    lb: int
    procs: list[Proc] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Hook for contenders that need more set-up values."""

    @property
    def master(self) -> Path:
        return self.work / "master.sock"

    @property
    def cfg(self) -> Path:
        return self.work / "haproxy.cfg"

    def spawn(self, argv: list[str], log: str) -> Proc:
        proc = Proc(argv, self.work / log)
        self.procs.append(proc)
        return proc

    def start_haproxy(self) -> None:
        self.spawn(["haproxy", "-W", "-S", str(self.master), "-f", str(self.cfg)], "haproxy.log")
        wait_until(self.master.exists, 10, what="HAProxy master socket")

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def watcher_pids(self) -> list[int]:
        """Processes that do the watching (for CPU and memory figures)."""
        return []

    def timeline_log(self) -> Path | None:
        """The log with the watcher's per-pass timelines (disco only), for the latency budget."""
        return None


class Disco(Contender):
    live: bool = True
    stats: int = 0

    def __post_init__(self) -> None:
        self.stats = take_port()

    def args(self) -> list[str]:
        extra = ["--runtime-socket", str(self.work / "admin.sock")] if self.live else []
        return [*DISCO, "watch", "--service", "web", "--output", str(self.cfg), "--consul-addr", self.consul.url,
                "--set", f"frontend_port={self.lb}", "--set", f"stats_port={self.stats}",
                "--set", "bind_address=127.0.0.1",
                *extra]

    def start(self) -> None:
        once = subprocess.run([*self.args(), "--once"], capture_output=True, text=True, timeout=60)
        assert once.returncode == 0, once.stderr
        self.start_haproxy()
        # --verbose: the debug lines include one timeline per pass (bench/budget.py reads them).
        self.watch = self.spawn([*self.args(), "--master-socket", str(self.master), "--verbose"], "watch.log")
        # Ready once its first pass is done: a change made before would time the watcher's start-up.
        wait_until(lambda: "timeline " in self.watch.output(), 60, what="disco watch's first pass")

    def watcher_pids(self) -> list[int]:
        return [self.watch.popen.pid]

    def timeline_log(self) -> Path | None:
        return self.work / "watch.log"


class DiscoLive(Disco):
    live = True


class DiscoReload(Disco):
    live = False


class HAProxyDNS(Contender):
    """HAProxy's own DNS service discovery against Consul's DNS interface (SRV records).

    Tuned as far as HAProxy's documentation allows: resolution every 100 ms (at 10 ms
    HAProxy 2.6 never filled every slot here), no hold on obsolete answers, ten slots.
    """

    resolve = "100ms"

    def start(self) -> None:
        assert self.consul.dns_port > 0, "Consul needs its DNS interface for this contender"
        self.cfg.write_text(COMMON.format(lb=self.lb).replace("{servers}", "") + f"""\
    server-template web 10 _web._tcp.service.consul resolvers consul resolve-prefer ipv4 init-addr none check inter 1s fall 2 rise 1
resolvers consul
    nameserver consul 127.0.0.1:{self.consul.dns_port}
    accepted_payload_size 8192
    resolve_retries 3
    timeout resolve {self.resolve}
    timeout retry {self.resolve}
    hold valid {self.resolve}
    hold obsolete 0s
    hold nx 0s
    hold other 0s
    hold refused 0s
    hold timeout 0s
""")
        self.start_haproxy()


class ConsulWatch(Contender):
    """`consul watch -type=service` with a handler that rewrites the config and reloads (the lab's way)."""

    def start(self) -> None:
        base = self.work / "haproxy.base.cfg"
        base.write_text(COMMON.format(lb=self.lb) + "{servers}\n")
        self.cfg.write_text(COMMON.format(lb=self.lb))
        self.start_haproxy()
        self.watch = self.spawn([self.consul.binary, "watch", f"-http-addr=127.0.0.1:{self.consul.http_port}",
                                 "-type=service", "-service=web", "-passingonly=true", sys.executable,
                                 str(HERE / "consul_watch_handler.py"), str(base), str(self.cfg), str(self.master)],
                                "consul-watch.log")

    def watcher_pids(self) -> list[int]:
        return [self.watch.popen.pid]


ALL = {"disco (live)": DiscoLive, "disco (reload)": DiscoReload, "HAProxy DNS SD": HAProxyDNS,
       "consul watch + handler": ConsulWatch}
