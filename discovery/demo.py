"""``disco demo``: the whole topology on one machine, without Docker, under one supervisord.

A Consul dev agent with its UI, HAProxy in master-worker mode driven by ``disco watch``,
and N webapps each beside its own ``disco register``, all on 127.0.0.1.  Before anything
starts, :func:`preflight` binds every port once: one in use is a ConfigError naming it, its
purpose and (from /proc) its holder.  The first HAProxy config (empty backend) is rendered
before HAProxy starts, as in the Docker image.  supervisord's XML-RPC tells which program
died and where its log is.  Stopping the demo stops supervisord and every program.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .consul.agent import consul_dev_config, find_consul
from .errors import ConfigError, DiscoveryError
from .haproxy.files import write_atomic
from .haproxy.render import DEFAULT_TEMPLATE
from .pipeline.bootstrap import bootstrap
from .pipeline.watch_config import WatchConfig
from .ports import Port, pick_consul_ports, preflight

REPO = Path(__file__).resolve().parent.parent
SERVICE = "web"
#: A second service, routed by a tag in fabio's syntax: /api/x reaches it as /x.
API, API_TAG = "api", "urlprefix-/api strip=/api"


@dataclass(frozen=True)
class DemoSpec:
    webapps: int = 3
    lb_port: int = 8080
    stats_port: int = 1936
    consul_port: int = 8500
    dashboard_port: int = 9120
    first_webapp_port: int = 9001
    workdir: Path = Path("run/demo")
    consul_bin: str | None = None
    #: Consul's serf LAN, serf WAN and server RPC ports (``--consul-ports``); None: free ones picked at start.
    consul_ports: tuple[int, int, int] | None = None

    @property
    def urls(self) -> dict[str, str]:
        return {
            "load balancer": f"http://127.0.0.1:{self.lb_port}/",
            "HAProxy stats": f"http://127.0.0.1:{self.stats_port}/",
            "Consul UI": f"http://127.0.0.1:{self.consul_port}/ui/",
            "disco dashboard": f"http://127.0.0.1:{self.dashboard_port}/",
        }


def demo_ports(spec: DemoSpec, consul: tuple[int, int, int]) -> list[Port]:
    ports = [
        Port(spec.lb_port, "load balancer", "--lb-port"),
        Port(spec.stats_port, "HAProxy stats page", "--stats-port"),
        Port(spec.consul_port, "Consul HTTP API and UI", "--consul-port"),
        Port(spec.dashboard_port, "disco's dashboard and metrics", "--dashboard-port"),
    ]
    ports += [
        Port(spec.first_webapp_port + n, f"webapp {SERVICE}-{n + 1}", "--first-webapp-port")
        for n in range(spec.webapps)
    ]
    ports.append(Port(spec.first_webapp_port + spec.webapps, f"webapp {API}-1", "--first-webapp-port"))
    flag = "--consul-ports" if spec.consul_ports else ""
    return [
        *ports,
        Port(consul[0], "Consul LAN gossip", flag, udp=True),
        Port(consul[1], "Consul WAN gossip", flag, udp=True),
        Port(consul[2], "Consul server RPC", flag),
    ]


def _program(name: str, command: list[str], priority: int, logdir: Path) -> str:
    return "\n".join(
        [
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
        ]
    )


def supervisord_config(spec: DemoSpec, consul_bin: str) -> str:
    """The generated supervisord.conf: one program per process of the topology."""
    work, logs = spec.workdir, spec.workdir / "logs"
    disco = [sys.executable, "-m", "discovery.cli"]
    consul_addr = f"http://127.0.0.1:{spec.consul_port}"
    parts = [
        "[supervisord]",
        "nodaemon=true",
        f"logfile={work / 'supervisord.log'}",
        f"pidfile={work / 'supervisord.pid'}",
        f"childlogdir={logs}",
        "",
        "[unix_http_server]",
        f"file={work / 'supervisor.sock'}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{work / 'supervisor.sock'}",
        "",
        _program("consul", [consul_bin, "agent", "-dev", "-config-file", str(work / "consul.json")], 10, logs),
        _program(
            "haproxy",
            ["haproxy", "-W", "-db", "-S", f"{work / 'master.sock'},mode,600", "-f", str(work / "haproxy.cfg")],
            20,
            logs,
        ),
        _program("watch", [*disco, "watch", "--config", str(work / "watch.toml")], 30, logs),
    ]
    for n in range(1, spec.webapps + 1):
        port, instance = spec.first_webapp_port + n - 1, f"{SERVICE}-{n}"
        parts.append(
            _program(
                f"webapp-{n}",
                [
                    sys.executable,
                    str(REPO / "webapp/app.py"),
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--id",
                    instance,
                ],
                40,
                logs,
            )
        )
        parts.append(
            _program(
                f"register-{n}",
                [
                    *disco,
                    "register",
                    "--service",
                    SERVICE,
                    "--port",
                    str(port),
                    "--address",
                    "127.0.0.1",
                    "--id",
                    instance,
                    "--check-http",
                    "/health",
                    "--consul-addr",
                    consul_addr,
                ],
                50,
                logs,
            )
        )
    port = spec.first_webapp_port + spec.webapps
    parts.append(
        _program(
            "webapp-api",
            [
                sys.executable,
                str(REPO / "webapp/app.py"),
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--id",
                f"{API}-1",
            ],
            40,
            logs,
        )
    )
    parts.append(
        _program(
            "register-api",
            [
                *disco,
                "register",
                "--service",
                API,
                "--port",
                str(port),
                "--address",
                "127.0.0.1",
                "--id",
                f"{API}-1",
                "--tag",
                API_TAG,
                "--check-http",
                "/health",
                "--consul-addr",
                consul_addr,
            ],
            50,
            logs,
        )
    )
    return "\n".join(parts)


def _values(spec: DemoSpec) -> dict[str, str]:
    return {
        "frontend_port": str(spec.lb_port),
        "stats_port": str(spec.stats_port),
        "bind_address": "127.0.0.1",
        "admin_socket": str(spec.workdir / "admin.sock"),
    }


def watch_toml(spec: DemoSpec) -> str:
    """``disco watch --config``'s file for the demo (keys are the flags' names)."""
    work = spec.workdir
    keys = {
        "service": [SERVICE, API],
        "output": str(work / "haproxy.cfg"),
        "master-socket": str(work / "master.sock"),
        "runtime-socket": str(work / "admin.sock"),
        "consul-addr": f"http://127.0.0.1:{spec.consul_port}",
        "listen": f"127.0.0.1:{spec.dashboard_port}",
    }
    lines = ["# Written by disco demo: the watcher's settings (disco watch --config FILE)."]
    lines += [f"{key} = {json.dumps(value)}" for key, value in keys.items()]  # JSON strings are TOML strings
    lines += ["", "[set]"] + [f"{key} = {json.dumps(value)}" for key, value in _values(spec).items()]
    return "\n".join(lines) + "\n"


def prepare(spec: DemoSpec) -> Path:
    """Check the tools and ports, write every file the demo needs; return the supervisord config's path."""
    consul_bin = find_consul(spec.consul_bin)
    if shutil.which("haproxy") is None:
        raise ConfigError("haproxy is not installed: run make deps (or apt-get install haproxy)")
    if not (REPO / "webapp/app.py").is_file():
        raise ConfigError(f"webapp not found at {REPO / 'webapp/app.py'}: run the demo from a clone of disco")
    user_ports = {p.number for p in demo_ports(spec, (0, 0, 0))}
    consul_ports = spec.consul_ports or pick_consul_ports(user_ports)
    preflight(demo_ports(spec, consul_ports))
    (spec.workdir / "logs").mkdir(parents=True, exist_ok=True)
    write_atomic(spec.workdir / "consul.json", json.dumps(consul_dev_config(spec.consul_port, *consul_ports), indent=2))
    # The first config, with an empty backend, exists before HAProxy starts.
    write_atomic(spec.workdir / "watch.toml", watch_toml(spec))
    config = WatchConfig(
        services=(SERVICE, API), template=DEFAULT_TEMPLATE, output=spec.workdir / "haproxy.cfg", values=_values(spec)
    )
    bootstrap(config)
    conf = spec.workdir / "supervisord.conf"
    write_atomic(conf, supervisord_config(spec, consul_bin))
    return conf


class Programs:
    """The programs' states, read from supervisord over XML-RPC on its unix socket."""

    def __init__(self, socket_path: Path) -> None:
        self.url = f"unix://{socket_path}"

    def states(self) -> list[dict[str, Any]]:
        """Every program's info (``name``, ``statename``, ``description``, ``stdout_logfile``…); [] until it answers."""
        from supervisor.xmlrpc import SupervisorTransport

        # A fresh connection each time: a transport that failed once (socket not there yet) is not reusable.
        rpc = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=SupervisorTransport(None, None, self.url))
        try:
            return cast(list[dict[str, Any]], rpc.supervisor.getAllProcessInfo())
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            return []

    def dead(self, states: tuple[str, ...] = ("FATAL", "EXITED")) -> list[dict[str, Any]]:
        """Programs supervisord gave up on (FATAL) or saw exit (EXITED, restarted at once: autorestart)."""
        return [info for info in self.states() if info["statename"] in states]


def describe(info: dict[str, Any]) -> str:
    """``webapp-2 is FATAL (Exited too quickly …), last log line: '…'; log: run/demo/logs/webapp-2.log``."""
    log = str(info.get("stdout_logfile") or "")
    shown = os.path.relpath(log) if log and not os.path.relpath(log).startswith("..") else log
    tail = Path(log).read_bytes()[-2000:].decode(errors="replace").strip().splitlines() if os.path.isfile(log) else []
    last = f", last log line: {tail[-1].strip()[:200]!r}" if tail else ""
    why = info.get("description") or info.get("spawnerr") or ""
    return f"{info['name']} is {info['statename']}{f' ({why})' if why else ''}{last}; log: {shown}"


def _wait_for_instances(
    url: str, count: int, deadline: float, stopped: threading.Event, check: Callable[[], None]
) -> set[str]:
    """Ask the load balancer until ``count`` instances answered (bounded); ``check`` (twice a second) may raise."""
    seen: set[str] = set()
    next_check = 0.0
    while time.monotonic() < deadline and len(seen) < count and not stopped.is_set():
        if time.monotonic() >= next_check:
            check()
            next_check = time.monotonic() + 0.5
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                seen.add(response.headers.get("X-Instance", ""))
        except OSError:
            stopped.wait(0.2)
    seen.discard("")
    return seen


def run_demo(
    spec: DemoSpec,
    on_ready: Callable[[str], None] = print,
    timeout: float = 60.0,
    on_problem: Callable[[str], None] = print,
) -> int:
    """Start supervisord, print the URLs once traffic flows, and stop everything on SIGINT/SIGTERM.

    ConfigError before anything starts (a port in use); DiscoveryError when a program dies
    during the start; one dying later is reported through ``on_problem``.
    """
    conf = prepare(spec)
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    programs = Programs(spec.workdir / "supervisor.sock")
    stopped = threading.Event()

    def stop(_signum: int = 0, _frame: object = None) -> None:
        stopped.set()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    def check() -> None:
        if proc.poll() is not None and not stopped.is_set():
            raise DiscoveryError(f"supervisord exited early; see {spec.workdir / 'supervisord.log'}")
        if dead := programs.dead(("FATAL",)):  # a program that keeps failing to start
            raise DiscoveryError("the demo did not start: " + "; ".join(describe(info) for info in dead))

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        urls = spec.urls
        seen = _wait_for_instances(urls["load balancer"], spec.webapps, time.monotonic() + timeout, stopped, check)
        if not stopped.is_set():
            check()
            on_ready(f"disco demo: {len(seen)} of {spec.webapps} webapps answering through HAProxy")
            if len(seen) < spec.webapps:
                down = [i for i in programs.states() if i["statename"] != "RUNNING"]
                on_problem(
                    "disco demo: not running: " + "; ".join(describe(i) for i in down)
                    if down
                    else f"disco demo: every program runs; see the logs in {spec.workdir / 'logs'}"
                )
            for name, url in urls.items():
                on_ready(f"  {name:14} {url}")
            on_ready(f"  logs           {spec.workdir / 'logs'}")
            on_ready(
                "Try an operator override (drain web-2 without touching its registration; delete the key to end it):\n"
                f"  curl -X PUT http://127.0.0.1:{spec.consul_port}/v1/kv/disco/overrides/{SERVICE} "
                f"""-d '{{"drain": ["{SERVICE}-2"]}}'"""
            )
            on_ready("Press Ctrl-C to stop everything.")
        reported: set[tuple[str, str, int]] = set()
        while proc.poll() is None and not stopped.is_set():
            for info in programs.dead():  # once per program, state and start
                if (key := (info["name"], info["statename"], info["start"])) not in reported:
                    reported.add(key)
                    on_problem(f"disco demo: {describe(info)}")
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
