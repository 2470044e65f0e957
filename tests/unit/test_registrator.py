"""The registrator's event handling and reconcile, with a fake agent and a fake engine."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from discovery.errors import CatalogUnavailable, WorkerFailed
from discovery.registration.labels import Container, Placement
from discovery.registration.registrator import Registrator

CID = "a" * 64
OTHER = "b" * 64


class FakeAgent:
    def __init__(self) -> None:
        self.services: dict[str, dict[str, Any]] = {"web-by-hand": {"Service": "web"}}
        self.checks: dict[str, str] = {}
        self.down = False
        self.calls: list[str] = []

    def _up(self, call: str) -> None:
        if self.down:
            raise CatalogUnavailable("Consul is unavailable: connection refused")
        self.calls.append(call)

    def register_service(self, body: dict[str, Any]) -> None:
        self._up("register " + body["ID"])
        self.services[body["ID"]] = body | {"Service": body["Name"]}
        for check in body.get("Checks") or ([body["Check"]] if "Check" in body else []):
            self.checks[check["CheckID"]] = check.get("Status", "critical")

    def deregister_service(self, sid: str) -> None:
        self._up("deregister " + sid)
        self.services.pop(sid, None)

    def agent_services(self) -> dict[str, Any]:
        self._up("services")
        return dict(self.services)

    def agent_checks(self) -> dict[str, Any]:
        self._up("checks")
        return dict(self.checks)

    def maintenance(self, sid: str, enable: bool, reason: str | None = None) -> None:
        self._up(f"maintenance {sid} {enable}")
        if enable:
            self.checks[f"_service_maintenance:{sid}"] = "critical"
        else:
            self.checks.pop(f"_service_maintenance:{sid}", None)

    def ttl_update(self, check_id: str, status: str, note: str | None = None) -> None:
        self._up(f"ttl {check_id} {status}")
        self.checks[check_id] = status


class FakeEngine:
    containers: ClassVar[dict[str, Container]] = {}

    def running(self) -> list[Container]:
        return list(self.containers.values())

    def inspect(self, cid: str) -> Container | None:
        return self.containers.get(cid)

    def events(self) -> Any:
        raise RuntimeError("a bug in the events thread")

    def close(self) -> None:
        pass


def container(cid: str = CID, **kw: Any) -> Container:
    return Container(
        id=cid,
        name="shop",
        labels={"disco.service": "web", "disco.port": "8080"},
        published={8080: (("", 32768),)},
        exposed=(8080,),
        **kw,
    )


def setup(*containers: Container) -> tuple[Registrator, FakeAgent]:
    FakeEngine.containers = {c.id: c for c in containers}
    agent = FakeAgent()
    reg = Registrator(agent, FakeEngine, Placement(host="h", host_ip="127.0.0.1"), resync=5)  # type: ignore[arg-type]
    return reg, agent


def event(action: str, cid: str = CID, **attrs: str) -> dict[str, Any]:
    return {"Type": "container", "Action": action, "Actor": {"ID": cid, "Attributes": attrs}}


def sid(cid: str = CID) -> str:
    return f"disco-reg:h:{cid[:12]}:8080"


def test_reconcile_adds_missing_and_removes_only_its_own_stale_entries():
    reg, agent = setup(container())
    agent.services[sid(OTHER)] = {"Service": "web"}  # ours, container gone
    agent.services["disco-reg:other-host:bbbbbbbbbbbb:80"] = {"Service": "web"}  # another registrator's
    reg.reconcile()
    assert set(agent.services) == {"web-by-hand", sid(), "disco-reg:other-host:bbbbbbbbbbbb:80"}
    agent.calls.clear()
    reg.reconcile()
    assert not [c for c in agent.calls if c.startswith("register")]  # what the agent holds is adopted


def test_stopping_signal_drains_until_start_other_signals_do_not():
    reg, agent = setup(container())
    reg.reconcile()
    reg._on_event(event("kill", signal="1"))  # SIGHUP: a reload, not a stop
    assert sid() in agent.services
    reg._on_event(event("kill", signal="15"))
    assert sid() not in agent.services
    reg.reconcile()  # still running, but draining: not registered again
    assert sid() not in agent.services
    for action in ("die", "stop", "start"):  # docker restart
        reg._on_event(event(action))
    assert sid() in agent.services


def test_a_new_run_found_by_a_reconcile_ends_the_drain():
    """An engine restart stops every container (kill 15: draining), then restarts those with a restart policy
    before its API answers: their start events are never seen.  The reconcile after reconnecting finds a new
    run of the container and registers it again (it stayed out for DRAIN_HOLD)."""
    reg, agent = setup(container(started_at="2026-12-05T10:00:00Z"))
    reg.reconcile()
    reg._on_event(event("kill", signal="15"))
    reg.reconcile()  # the same run, still stopping: not registered again
    assert sid() not in agent.services
    FakeEngine.containers[CID] = container(started_at="2026-12-05T10:00:12Z")  # started again by the engine
    reg.reconcile()
    assert sid() in agent.services


def test_container_stop_signal_counts_as_stopping():
    reg, agent = setup(container(stop_signal="SIGWINCH"))
    reg.reconcile()
    reg._on_event(event("kill", signal="28"))
    assert sid() not in agent.services


def test_pause_health_and_die():
    reg, agent = setup(container(healthcheck=True, health="starting"))
    reg.reconcile()
    assert agent.checks[f"service:{sid()}:docker"] == "critical"
    reg._on_event(event("health_status: healthy"))
    assert agent.checks[f"service:{sid()}:docker"] == "passing"
    reg._on_event(event("pause"))
    assert f"_service_maintenance:{sid()}" in agent.checks
    reg._on_event(event("unpause"))
    assert f"_service_maintenance:{sid()}" not in agent.checks
    reg._on_event(event("die"))
    assert sid() not in agent.services


def test_consul_failure_makes_a_reconcile_due_and_events_only_update_bookkeeping():
    reg, agent = setup()
    reg.reconcile()
    FakeEngine.containers[CID] = container()
    agent.down = True
    reg._on_event(event("start"))
    assert reg._dirty and reg._attempt == 1
    reg._on_event(event("kill", signal="15"))  # noted (draining) though not sent
    agent.down = False
    reg._try_reconcile()
    assert not reg._dirty and sid() not in agent.services


def test_a_dying_events_thread_stops_the_registrator_with_an_error():
    reg, _agent = setup()
    outcome: list[BaseException] = []
    runner = threading.Thread(target=lambda: _capture(reg.run, outcome), daemon=True)
    runner.start()
    runner.join(5)
    assert not runner.is_alive(), "the main loop did not notice the dead thread"
    [exc] = outcome
    assert isinstance(exc, WorkerFailed) and "docker-events" in str(exc)


def _capture(fn, outcome: list[BaseException]) -> None:
    try:
        fn()
    except BaseException as exc:
        outcome.append(exc)


def test_stop_ends_the_loop_and_leaves_registrations():
    reg, agent = setup(container())
    reg.reconcile()
    reg._events.events = lambda: iter(())  # type: ignore[method-assign]  # a stream that keeps closing
    timer = threading.Timer(0.3, reg.stop)
    timer.start()
    reg.run()
    timer.join()
    assert sid() in agent.services
