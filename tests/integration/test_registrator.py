"""`disco registrator` against the real Docker engine and a real Consul agent.

Each test labels its containers with a run label of its own and starts the registrator with
``--label`` on it, so nothing else on the engine (other people's containers) is ever touched.
Published ports are assigned by Docker (``127.0.0.1::8080``); the Docker proxy's port is bound by
the test itself.  Figures measured here are appended to artifacts/registrator-timings.txt.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from testkit import DISCO, REPO, ConsulAgent, Proc, wait_until

docker = pytest.importorskip("docker")

IMAGE = "disco-test/webapp-app"
SOCKET = Path("/var/run/docker.sock")
TIMINGS = REPO / "artifacts" / "registrator-timings.txt"
HEALTHCHECK = {
    "test": ["CMD", "python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/health')"],
    "interval": 500_000_000,
    "timeout": 2_000_000_000,
    "retries": 1,
}


def record(name: str, seconds: float) -> None:
    TIMINGS.parent.mkdir(exist_ok=True)
    with TIMINGS.open("a") as fh:
        fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {name}: {seconds * 1000:.0f} ms\n")


@pytest.fixture(scope="session")
def engine() -> Any:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"registrator tests need a Docker engine (make deps starts one): {exc}", pytrace=False)
    subprocess.run([str(REPO / "scripts/build-test-images.sh")], check=True, timeout=900)
    subprocess.run(
        ["docker", "build", "-q", "-t", IMAGE, "-f", "webapp/app.Dockerfile", "."],
        cwd=REPO,
        check=True,
        timeout=900,
        capture_output=True,
    )
    return client


class Run:
    """One test's containers (all carrying its run label), its network and its registrators."""

    def __init__(self, client: Any, consul: ConsulAgent, workdir: Path) -> None:
        self.client = client
        self.consul = consul
        self.workdir = workdir
        self.tag = uuid.uuid4().hex[:8]
        self.label = f"disco-regtest={self.tag}"
        self.network = client.networks.create(f"disco-regtest-{self.tag}", labels={"disco-regtest": self.tag})
        self.containers: list[Any] = []
        self.procs: list[Proc] = []

    def start(
        self,
        labels: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        healthcheck: dict[str, Any] | None = None,
        publish: bool = True,
        ports: tuple[int, ...] = (8080,),
    ) -> Any:
        container = self.client.containers.run(
            IMAGE,
            detach=True,
            name=f"disco-regtest-{self.tag}-{len(self.containers)}",
            labels={"disco-regtest": self.tag, **(labels or {})},
            environment=env or {},
            ports={f"{p}/tcp": ("127.0.0.1", None) for p in ports} if publish else {},
            network=self.network.name,
            healthcheck=healthcheck,
        )
        self.containers.append(container)
        return container

    def registrator(self, *args: str, env: dict[str, str] | None = None, name: str = "registrator") -> Proc:
        proc = Proc(
            [*DISCO, "registrator", "--consul-addr", self.consul.url, "--label", self.label, *args],
            self.workdir / f"{name}.log",
            env=env,
        )
        self.procs.append(proc)
        return proc

    def host_port(self, container: Any) -> int:
        container.reload()
        return int(container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])

    def agent(self) -> dict[str, Any]:
        return {k: v for k, v in self.consul.agent_services().items() if k.startswith("disco-reg:")}

    def close(self) -> None:
        for proc in self.procs:
            proc.stop()
        for container in self.containers:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        self.network.remove()


@pytest.fixture
def run(engine: Any, consul: ConsulAgent, tmp_path: Path) -> Iterator[Run]:
    r = Run(engine, consul, tmp_path)
    yield r
    r.close()


def web(service: str, **extra: str) -> dict[str, str]:
    return {"disco.service": service, "disco.port": "8080", "disco.check": "/health", **extra}


def started_at(text: str) -> float:
    """Docker's RFC 3339 time with nanoseconds, as a Unix timestamp."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    return datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC).timestamp() + float(f"0.{fraction or 0}")


def timed(predicate: Callable[[], Any], timeout: float, what: str) -> float:
    t = time.monotonic()
    wait_until(predicate, timeout, interval=0.01, what=what)
    return time.monotonic() - t


def test_labelled_container_is_registered_and_passing(run: Run) -> None:
    reg = run.registrator("--host-ip", "127.0.0.1", "--resync", "5s")
    wait_until(lambda: "following the Docker engine" in reg.output(), 15, what="registrator started")
    c = run.start(web("web", **{"disco.tags": "blue,v2", "disco.meta.version": "2", "disco.weight": "5"}))
    wait_until(run.agent, 15, interval=0.01, what="web registered")
    registered = time.time()
    wait_until(lambda: run.consul.passing("web"), 15, interval=0.01, what="web passing")
    passing = time.time()
    c.reload()
    started = started_at(c.attrs["State"]["StartedAt"])
    record("container started -> registered", registered - started)
    record("container started -> passing (http check, interval 1s)", passing - started)
    sid = f"disco-reg:{socket.gethostname()}:{c.id[:12]}:8080"
    entry = run.agent()[sid]
    assert (entry["Address"], entry["Port"]) == ("127.0.0.1", run.host_port(c))
    assert sorted(entry["Tags"]) == ["blue", "v2"]
    assert entry["Meta"] == {"version": "2", "disco-weight": "5"}
    assert requests.get(f"http://127.0.0.1:{entry['Port']}/health", timeout=2).status_code == 200


def test_network_address_with_several_networks(run: Run) -> None:
    """registrator's wrong-IP complaints (#291, #498): --network picks the address, whatever else is attached."""
    reg = run.registrator("--network", run.network.name, "--resync", "5s")
    other = run.client.networks.create(f"disco-regtest-{run.tag}-b", labels={"disco-regtest": run.tag})
    try:
        c = run.start(web("web"), publish=False)
        wait_until(lambda: run.consul.passing("web"), 20, what="web passing at its network IP")
        other.connect(c)  # a connect event: the container is read again
        c.reload()
        ip = c.attrs["NetworkSettings"]["Networks"][run.network.name]["IPAddress"]
        wait_until(lambda: reg.output().count("registered") >= 1 and run.agent(), 5, what="still registered")
        [entry] = run.agent().values()
        assert (entry["Address"], entry["Port"]) == (ip, 8080)
        # Without --network, two networks are ambiguous: refused with one line.
        second = run.registrator("--resync", "5s", "--host", "second", name="registrator-2")
        wait_until(lambda: "give --network or --host-ip" in second.output(), 15, what="the ambiguity reported")
        assert not [sid for sid in run.agent() if sid.startswith("disco-reg:second:")]
    finally:
        for container in run.containers:
            container.remove(force=True)
        run.containers.clear()
        other.remove()


def test_docker_stop_deregisters_before_the_container_exits(run: Run) -> None:
    run.registrator("--host-ip", "127.0.0.1", "--resync", "5s")
    c = run.start(web("web"), env={"STOP_GRACE": "2"})
    wait_until(lambda: run.consul.passing("web"), 20, what="web passing")
    port = run.host_port(c)
    exited: list[float] = []
    t0 = time.monotonic()
    stopper = threading.Thread(target=lambda: (c.stop(timeout=10), exited.append(time.monotonic())))
    stopper.start()
    try:
        gone = t0 + timed(lambda: not run.agent(), 5, "deregistered after docker stop")
        # Deregistered while the container still answers: the load balancer drains it.
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200
        assert not exited
    finally:
        stopper.join(20)
    assert exited and gone < exited[0]
    record("docker stop -> deregistered", gone - t0)
    record("docker stop -> container exited (STOP_GRACE=2)", exited[0] - t0)


def test_docker_kill_deregisters(run: Run) -> None:
    reg = run.registrator("--host-ip", "127.0.0.1", "--resync", "30s")
    c = run.start(web("web"))
    wait_until(lambda: run.consul.passing("web"), 20, what="web passing")
    t0 = time.monotonic()
    c.kill()
    wait_until(lambda: not run.agent(), 5, interval=0.01, what="deregistered after docker kill")
    record("docker kill -> deregistered", time.monotonic() - t0)
    assert "kill 9" in reg.output()


def test_pause_is_critical_unpause_passing(run: Run) -> None:
    run.registrator("--host-ip", "127.0.0.1", "--resync", "30s")
    c = run.start(web("web"))
    wait_until(lambda: run.consul.passing("web"), 20, what="web passing")
    c.pause()
    record("docker pause -> not passing", timed(lambda: not run.consul.passing("web"), 5, "critical when paused"))
    assert run.agent()  # still registered: it comes back
    c.unpause()
    record("docker unpause -> passing", timed(lambda: run.consul.passing("web"), 10, "passing when unpaused"))


def test_docker_healthcheck_drives_a_ttl_check(run: Run) -> None:
    run.registrator("--host-ip", "127.0.0.1", "--resync", "30s")
    # Consul's own check is TCP (always passes): only Docker's verdict can take it out.
    c = run.start(web("web", **{"disco.check": "tcp"}), healthcheck=HEALTHCHECK)
    wait_until(lambda: run.consul.passing("web"), 30, what="passing once Docker says healthy")

    def docker_health() -> str:
        c.reload()
        return str(c.attrs["State"]["Health"]["Status"])

    c.exec_run(["touch", "/tmp/fail"])
    wait_until(lambda: docker_health() == "unhealthy", 20, interval=0.01, what="Docker says unhealthy")
    record(
        "Docker unhealthy -> not passing",
        timed(lambda: not run.consul.passing("web"), 1.0, "not passing within a second of Docker's verdict"),
    )
    c.exec_run(["rm", "/tmp/fail"])
    wait_until(lambda: docker_health() == "healthy", 20, interval=0.01, what="Docker says healthy")
    timed(lambda: run.consul.passing("web"), 1.0, "passing within a second of Docker's verdict")


def test_missed_events_are_reconciled_at_restart(run: Run) -> None:
    reg = run.registrator("--host-ip", "127.0.0.1", "--resync", "2s")
    old = run.start(web("web"))
    wait_until(lambda: run.consul.passing("web"), 20, what="web passing")
    reg.signal(9)
    reg.popen.wait(5)
    old.remove(force=True)  # the registrator never sees its kill, die or destroy
    new = run.start(web("web"))
    assert len(run.agent()) == 1  # the stale one is still there
    t0 = time.monotonic()
    run.registrator("--host-ip", "127.0.0.1", "--resync", "2s", name="registrator-2")
    record(
        "restart -> stale registration removed",
        timed(lambda: all(new.id[:12] in sid for sid in run.agent()), 2 + 5, "stale registration removed"),
    )
    wait_until(lambda: run.consul.passing("web"), 10, what="the new container passing")
    record("restart -> new container passing", time.monotonic() - t0)


class DockerProxy:
    """127.0.0.1:PORT in front of the engine's unix socket; cut() drops every connection and
    refuses new ones until restore()."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.cut_off = threading.Event()
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.cut_off.is_set():
                conn.close()
                continue
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(str(SOCKET))
            with self.lock:
                self.open += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.cut_off.set()
        with self.lock:
            conns, self.open = self.open, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.cut_off.clear()

    def close(self) -> None:
        self.closed.set()
        self.cut()
        self.listener.close()
        self.thread.join(2)


@pytest.mark.skipif(not SOCKET.exists(), reason="needs the engine on /var/run/docker.sock")
def test_event_stream_cut_and_restored(run: Run) -> None:
    proxy = DockerProxy()
    try:
        reg = run.registrator(
            "--host-ip", "127.0.0.1", "--resync", "30s", env={"DOCKER_HOST": f"tcp://127.0.0.1:{proxy.port}"}
        )
        old = run.start(web("web"))
        wait_until(lambda: run.consul.passing("web"), 20, what="web passing through the proxy")
        proxy.cut()
        wait_until(lambda: "reconnecting" in reg.output(), 5, what="the registrator saw the stream close")
        old.remove(force=True)
        new = run.start(web("web"))
        wait_until(lambda: "; retrying" in reg.output(), 15, what="a reconnection refused while cut")
        assert reg.alive() and old.id[:12] in "".join(run.agent())
        proxy.restore()
        record(
            "event stream restored -> reconciled",
            timed(lambda: [sid.split(":")[2] for sid in run.agent()] == [new.id[:12]], 15, "reconciled after restore"),
        )
        wait_until(lambda: run.consul.passing("web"), 10, what="the new container passing")
        assert reg.alive()
    finally:
        proxy.close()


def test_registrator_variables(run: Run) -> None:
    reg = run.registrator("--host-ip", "127.0.0.1", "--resync", "5s", "--explicit")
    env_only = run.start(
        env={
            "SERVICE_NAME": "api",
            "SERVICE_TAGS": "x,y",
            "SERVICE_CHECK_HTTP": "/health",
            "SERVICE_CHECK_INTERVAL": "1s",
            "SERVICE_VERSION": "3",
        }
    )
    by_port = run.start(
        labels={"SERVICE_8080_NAME": "admin", "SERVICE_CHECK_TCP": "true", "SERVICE_CHECK_INTERVAL": "1s"}
    )
    run.start(env={"SERVICE_NAME": "hidden", "SERVICE_IGNORE": "true"})
    run.start()  # no name: skipped with --explicit
    wait_until(lambda: run.consul.passing("api") and run.consul.passing("admin"), 20, what="api and admin passing")
    services = {e["Service"]: e for e in run.agent().values()}
    assert set(services) == {"api", "admin"}, services
    assert sorted(services["api"]["Tags"]) == ["x", "y"] and services["api"]["Meta"] == {"version": "3"}
    assert env_only.id[:12] in services["api"]["ID"] and by_port.id[:12] in services["admin"]["ID"]
    assert "WARNING" not in reg.output()


def test_route_tags_with_a_redirect_and_one_name_on_two_ports(run: Run) -> None:
    """registrator's rules (docs/registrator-tags.md): SERVICE_NAME on two published ports is two services,
    NAME-PORT; a route tag with fabio's `redirect=CODE,URL` is one tag, not split at its comma."""
    reg = run.registrator("--host-ip", "127.0.0.1", "--resync", "5s")
    wait_until(lambda: "following the Docker engine" in reg.output(), 15, what="registrator started")
    redirect = "urlprefix-/old redirect=301,https://new.example.com$path"
    two = run.start(env={"SERVICE_NAME": "app", "SERVICE_TAGS": f"blue,{redirect}"}, ports=(8080, 9090))
    labelled = run.start(web("web", **{"disco.tags": f"{redirect},v2"}))

    def services() -> dict[str, Any]:
        return {e["Service"] + ":" + e["ID"].split(":")[-1]: e for e in run.agent().values()}

    wait_until(lambda: len(services()) == 3, 20, what="three registrations")
    found = services()
    assert set(found) == {"app-8080:8080", "app-9090:9090", "web:8080"}, found
    assert sorted(found["app-8080:8080"]["Tags"]) == sorted(found["app-9090:9090"]["Tags"]) == ["blue", redirect]
    assert sorted(found["web:8080"]["Tags"]) == sorted([redirect, "v2"])
    assert two.id[:12] in found["app-9090:9090"]["ID"] and labelled.id[:12] in found["web:8080"]["ID"]
    assert "not registered" not in reg.output()


def test_hostile_labels_are_refused_with_one_line_each(run: Run) -> None:
    reg = run.registrator("--host-ip", "127.0.0.1", "--resync", "2s", "--verbose")
    bad = [
        run.start(web("web\nbackend evil")),
        run.start(web("web", **{"disco.port": "0"})),
        run.start(web("web", **{"disco.check": "/health check"})),
        run.start(web("web", **{"disco.check": "http://169.254.169.254/"})),
        run.start(web("web", **{"disco.tags": "ok,bad tag"})),
    ]
    good = run.start(web("web"))
    wait_until(lambda: run.consul.passing("web"), 20, what="the good container passing")
    wait_until(lambda: reg.output().count("not registered") >= len(bad), 10, what="one line per bad container")
    [sid] = run.agent()
    assert good.id[:12] in sid
    passes = reg.output().count("reconciled:")
    wait_until(lambda: reg.output().count("reconciled:") > passes, 10, what="one more resync")
    lines = [line for line in reg.output().splitlines() if "not registered" in line]
    assert len(lines) == len(bad), lines
    for container in bad:
        assert sum(f"'{container.name}'" in line for line in lines) == 1, (container.name, lines)
    assert reg.alive()


def test_sigterm_leaves_registrations_or_removes_them(run: Run) -> None:
    reg = run.registrator("--host-ip", "127.0.0.1", "--resync", "5s")
    run.start(web("web"))
    wait_until(run.agent, 20, what="registered")
    assert reg.stop() == 0
    assert len(run.agent()) == 1
    reg = run.registrator("--host-ip", "127.0.0.1", "--resync", "5s", "--deregister-on-exit", name="registrator-2")
    wait_until(lambda: "following the Docker engine" in reg.output(), 15, what="second registrator started")
    assert reg.stop() == 0
    assert not run.agent()


def test_consul_agent_away_and_back(run: Run) -> None:
    reg = run.registrator("--host-ip", "127.0.0.1", "--resync", "30s")
    old = run.start(web("web"))
    wait_until(lambda: run.consul.passing("web"), 20, what="web passing")
    run.consul.stop()
    new = run.start(web("web"))  # its registration fails: retried with backoff, forever
    old.remove(force=True)
    wait_until(lambda: "reconciling in" in reg.output(), 15, what="a failed write scheduled a reconcile")
    t0 = time.monotonic()
    run.consul.start()  # a dev agent comes back empty
    wait_until(lambda: [sid.split(":")[2] for sid in run.agent()] == [new.id[:12]], 20, what="reconciled")
    record("Consul agent answering again -> reconciled (backoff at most 10s)", time.monotonic() - t0)
    wait_until(lambda: run.consul.passing("web"), 10, what="the new container passing")
    assert reg.alive()
