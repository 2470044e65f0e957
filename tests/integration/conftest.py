from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from discovery.consul.agent import find_consul
from discovery.errors import ConfigError
from testkit import DISCO, ConsulAgent, Proc, take_port, wait_until, webapp_command


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def _tools() -> None:
    missing = [tool for tool in ("haproxy",) if shutil.which(tool) is None]
    try:
        find_consul()
    except ConfigError:
        missing.append("consul")
    if missing:
        pytest.fail(f"integration tests need {', '.join(missing)}: run `make deps`", pytrace=False)


@pytest.fixture
def consul(tmp_path: Path) -> Iterator[ConsulAgent]:
    agent = ConsulAgent(tmp_path)
    agent.start()
    yield agent
    agent.stop()


@dataclass
class Stack:
    """Consul + N webapps with `disco register` + HAProxy + `disco watch`, all real processes."""

    consul: ConsulAgent
    workdir: Path
    service: str = "web"
    lb_port: int = field(default_factory=take_port)
    stats_port: int = field(default_factory=take_port)
    procs: list[Proc] = field(default_factory=list)
    registers: dict[str, Proc] = field(default_factory=dict)
    watch: Proc | None = None
    haproxy: Proc | None = None

    @property
    def output(self) -> Path:
        return self.workdir / "haproxy.cfg"

    @property
    def master_socket(self) -> Path:
        return self.workdir / "master.sock"

    @property
    def admin_socket(self) -> Path:
        return self.workdir / "admin.sock"

    @property
    def lb(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}/"

    def spawn(self, argv: list[str], name: str) -> Proc:
        proc = Proc(argv, self.workdir / f"{name}.log")
        self.procs.append(proc)
        return proc

    def watch_args(self, *extra: str) -> list[str]:
        return [
            *DISCO,
            "watch",
            "--service",
            self.service,
            "--output",
            str(self.output),
            "--consul-addr",
            self.consul.url,
            "--set",
            f"frontend_port={self.lb_port}",
            "--set",
            f"stats_port={self.stats_port}",
            "--set",
            "bind_address=127.0.0.1",
            *extra,
        ]

    def watch_values(self) -> list[str]:
        """The watcher's ``--set`` values: status and explain render what Consul says with them."""
        return [
            *("--set", f"frontend_port={self.lb_port}", "--set", f"stats_port={self.stats_port}"),
            *("--set", "bind_address=127.0.0.1"),
        ]

    def add_webapp(self, instance: str) -> Path:
        """Start a webapp and its `disco register`; return its fail file (touch it to make it sick)."""
        port, fail = take_port(), self.workdir / f"{instance}.fail"
        self.spawn(webapp_command(port, instance, fail), f"webapp-{instance}")
        self.registers[instance] = self.spawn(
            [
                *DISCO,
                "register",
                "--service",
                self.service,
                "--port",
                str(port),
                "--address",
                "127.0.0.1",
                "--id",
                instance,
                "--check-http",
                "/health",
                "--consul-addr",
                self.consul.url,
            ],
            f"register-{instance}",
        )
        return fail

    def start_balancer(self, live: bool = False) -> None:
        """First config rendered by `disco watch --once`, then HAProxy, then the watcher.

        With ``live``, the watcher applies server changes through the runtime API.
        """
        if live:
            self.watch_args = (
                lambda orig: (
                    lambda *extra: orig("--runtime-socket", str(self.admin_socket), "--drain-grace", "2s", *extra)
                )
            )(self.watch_args)
        once = self.spawn(self.watch_args("--once"), "watch-once")
        assert once.popen.wait(60) == 0, once.output()
        self.haproxy = self.spawn(
            ["haproxy", "-W", "-S", f"{self.master_socket},mode,600", "-f", str(self.output)], "haproxy"
        )
        wait_until(self.master_socket.exists, 10, what="HAProxy's master socket")
        self.watch = self.spawn(self.watch_args("--master-socket", str(self.master_socket)), "watch")

    def reloads(self) -> int:
        """HAProxy's reload counter, from the master CLI (which may refuse connections for a
        moment while the master re-executes itself on a reload)."""
        from discovery.errors import HAProxyUnavailable, ReloadError
        from discovery.haproxy.master import MasterSocket

        def read() -> tuple[int] | None:  # a tuple: truthy for wait_until even when the count is 0
            try:
                return (MasterSocket(self.master_socket).state().reloads,)
            except (HAProxyUnavailable, ReloadError):
                return None

        return int(wait_until(read, 10, what="HAProxy's master CLI")[0])

    def servers_in_config(self) -> set[str]:
        return {line.split()[1] for line in self.output.read_text().splitlines() if line.strip().startswith("server ")}

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


@pytest.fixture
def stack(consul: ConsulAgent, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(consul, tmp_path)
    yield s
    s.close()
