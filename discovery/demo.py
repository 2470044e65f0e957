"""``disco demo``: the whole topology on one machine, without Docker, under one supervisord.

A Consul dev agent with its UI, HAProxy in master-worker mode driven by
``disco watch``, and N webapps each beside its own ``disco register``, all on
127.0.0.1.  The first HAProxy config is rendered (empty backend) before
supervisord starts HAProxy, as the Docker image does.  Stopping the demo stops
supervisord, which stops every program and its children.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .haproxy.files import write_atomic
from .consul.agent import consul_dev_config, find_consul, free_port
from .errors import ConfigError, DiscoveryError
from .haproxy.render import DEFAULT_TEMPLATE
from .pipeline.watcher import WatchConfig, bootstrap

REPO = Path(__file__).resolve().parent.parent
SERVICE = "web"


@dataclass(frozen=True)
class DemoSpec:
    webapps: int = 3
    lb_port: int = 8080
    stats_port: int = 1936
    consul_port: int = 8500
    first_webapp_port: int = 9001
    workdir: Path = Path("run/demo")
    consul_bin: str | None = None

    @property
    def urls(self) -> dict[str, str]:
        return {"load balancer": f"http://127.0.0.1:{self.lb_port}/",
                "HAProxy stats": f"http://127.0.0.1:{self.stats_port}/",
                "Consul UI": f"http://127.0.0.1:{self.consul_port}/ui/"}


def _program(name: str, command: list[str], priority: int, logdir: Path) -> str:
    return "\n".join([
        f"[program:{name}]",
        f"command={shlex.join(command)}",
        f"priority={priority}",
        "autorestart=true",
        "startsecs=1",
        "stopasgroup=true",
        "killasgroup=true",
        "stopwaitsecs=10",
        "redirect_stderr=true",
        f"stdout_logfile={logdir / (name + '.log')}",
        "stdout_logfile_maxbytes=10MB",
        "stdout_logfile_backups=0",
        "",
    ])


def supervisord_config(spec: DemoSpec, consul_bin: str) -> str:
    """The generated supervisord.conf: one program per process of the topology."""
    work, logs = spec.workdir, spec.workdir / "logs"
    disco = [sys.executable, "-m", "discovery.cli"]
    consul_addr = f"http://127.0.0.1:{spec.consul_port}"
    parts = [
        "[supervisord]", "nodaemon=true", f"logfile={work / 'supervisord.log'}", f"pidfile={work / 'supervisord.pid'}",
        f"childlogdir={logs}", "",
        "[unix_http_server]", f"file={work / 'supervisor.sock'}", "chmod=0700", "",
        "[rpcinterface:supervisor]", "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
        "[supervisorctl]", f"serverurl=unix://{work / 'supervisor.sock'}", "",
        _program("consul", [consul_bin, "agent", "-dev", "-config-file", str(work / "consul.json")], 10, logs),
        _program("haproxy", ["haproxy", "-W", "-db", "-S", f"{work / 'master.sock'},mode,600", "-f",
                             str(work / "haproxy.cfg")], 20, logs),
        _program("watch", disco + ["watch", "--service", SERVICE, "--output", str(work / "haproxy.cfg"),
                                   "--master-socket", str(work / "master.sock"),
                                   "--runtime-socket", str(work / "admin.sock"), "--consul-addr", consul_addr,
                                   *_values(spec)], 30, logs),
    ]
    for n in range(1, spec.webapps + 1):
        port, instance = spec.first_webapp_port + n - 1, f"{SERVICE}-{n}"
        parts.append(_program(f"webapp-{n}", [sys.executable, str(REPO / "webapp/app.py"), "--bind", "127.0.0.1",
                                              "--port", str(port), "--id", instance], 40, logs))
        parts.append(_program(f"register-{n}", disco + ["register", "--service", SERVICE, "--port", str(port),
                                                        "--address", "127.0.0.1", "--id", instance,
                                                        "--check-http", "/health", "--consul-addr", consul_addr],
                              50, logs))
    return "\n".join(parts)


def _values(spec: DemoSpec) -> list[str]:
    values = {"frontend_port": spec.lb_port, "stats_port": spec.stats_port, "bind_address": "127.0.0.1",
              "admin_socket": str(spec.workdir / "admin.sock")}
    return [arg for k, v in values.items() for arg in ("--set", f"{k}={v}")]


def prepare(spec: DemoSpec) -> Path:
    """Write every file the demo needs; return the supervisord config's path."""
    consul_bin = find_consul(spec.consul_bin)
    if shutil.which("haproxy") is None:
        raise ConfigError("haproxy is not installed: run make deps (or apt-get install haproxy)")
    if not (REPO / "webapp/app.py").is_file():
        raise ConfigError(f"webapp not found at {REPO / 'webapp/app.py'}: run the demo from a clone of disco")
    (spec.workdir / "logs").mkdir(parents=True, exist_ok=True)
    # Only the HTTP port is the user's; the agent's gossip and RPC ports just need to be free.
    write_atomic(spec.workdir / "consul.json",
                 json.dumps(consul_dev_config(spec.consul_port, free_port(), free_port(), free_port()), indent=2))
    # The first config, with an empty backend, exists before HAProxy starts.
    values = dict(arg.split("=", 1) for arg in _values(spec)[1::2])
    config = WatchConfig(services=(SERVICE,), template=DEFAULT_TEMPLATE, output=spec.workdir / "haproxy.cfg",
                         values=values)
    bootstrap(config)
    conf = spec.workdir / "supervisord.conf"
    write_atomic(conf, supervisord_config(spec, consul_bin))
    return conf


def _wait_for_instances(url: str, count: int, deadline: float, stopped: threading.Event) -> set[str]:
    """Ask the load balancer until ``count`` different instances answered (bounded in time)."""
    seen: set[str] = set()
    while time.monotonic() < deadline and len(seen) < count and not stopped.is_set():
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                seen.add(response.headers.get("X-Instance", ""))
        except OSError:
            stopped.wait(0.2)
    seen.discard("")
    return seen


def run_demo(spec: DemoSpec, on_ready: Callable[[str], None] = print, timeout: float = 60.0) -> int:
    """Start supervisord, print the URLs once traffic flows, and stop everything on SIGINT/SIGTERM."""
    conf = prepare(spec)
    proc = subprocess.Popen([sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    stopped = threading.Event()

    def stop(_signum: int = 0, _frame: object = None) -> None:
        stopped.set()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        urls = spec.urls
        seen = _wait_for_instances(urls["load balancer"], spec.webapps, time.monotonic() + timeout, stopped)
        if proc.poll() is not None and not stopped.is_set():
            raise DiscoveryError(f"supervisord exited early; see {spec.workdir / 'supervisord.log'}")
        if not stopped.is_set():
            on_ready(f"disco demo: {len(seen)} of {spec.webapps} webapps answering through HAProxy")
            for name, url in urls.items():
                on_ready(f"  {name:14} {url}")
            on_ready(f"  logs           {spec.workdir / 'logs'}")
            on_ready("Press Ctrl-C to stop everything.")
        while proc.poll() is None:
            stopped.wait(0.5)
    finally:
        stop()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return 0
