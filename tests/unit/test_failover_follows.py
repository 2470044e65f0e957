"""Failover watches for discovered services: started when a service is followed, stopped (and its
failover instances forgotten) when it leaves; a discovered service that leaves the local catalog
stays while a failover datacenter has instances of it."""

from __future__ import annotations

import logging
import threading

from discovery.consul.discover import DEREGISTERED, NO_ROUTE_TAG, Gone, Listed
from discovery.consul.failover_watch import FailoverUpdate
from discovery.consul.watch import WatchTiming
from discovery.pipeline.events import EventBus
from discovery.pipeline.failover import FailoverStage
from discovery.pipeline.failover_follows import FailoverFollows
from discovery.pipeline.followed import Followed
from discovery.pipeline.gatekeeper import Gatekeeper
from discovery.pipeline.inbox import Inbox
from discovery.pipeline.lifecycle import Workers
from discovery.pipeline.overrides import OverrideStage
from discovery.pipeline.quiescence import Quiescence
from discovery.state.convert import convert
from discovery.state.gate import GatePolicy
from discovery.state.model import Route
from testkit import wait_until

from .test_failover import Clock, entry, service


class Remote:
    """Answers every query at once with one instance, then blocks until stopped."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []
        self.release = threading.Event()

    def health_service_dc(self, name, dc, *, index, wait):
        self.asked.append((name, dc))
        if index:
            self.release.wait(wait)
        return 7, [entry("r1")]

    def datacenters(self):
        return ["dc1", "dc2"]


def test_watches_start_with_the_followed_services_and_stop_when_they_leave():
    stop = threading.Event()
    workers = Workers(stop, lambda: None)
    posted: list[object] = []
    stage = FailoverStage(("dc2", "dc3"), GatePolicy(), lambda e: None, Clock())
    remote = Remote()
    follows = FailoverFollows(remote, stage, posted.append, workers, WatchTiming(wait=0.2, min_interval=0.01))
    follows.sync(["web"])
    follows.sync(["web", "api"])
    assert follows.services == {"web", "api"} and stage.followed == {"web", "api"}
    assert stage.awaited == {(s, d) for s in ("web", "api") for d in ("dc2", "dc3")}
    wait_until(lambda: sum(isinstance(m, FailoverUpdate) for m in posted) == 4, 5, what="four first answers")
    for message in list(posted):
        stage.receive(message)  # type: ignore[arg-type]
    assert stage.has_instances("api") and stage.has_instances("web") and not stage.awaited
    follows.sync(["web"])  # api left: its watches stop, its failover instances go
    assert follows.services == {"web"} and stage.followed == {"web"} and not stage.has_instances("api")
    late = convert("api", [entry("r1")]).service
    assert not stage.receive(FailoverUpdate(late, "dc2", 9))  # an answer on its way when api left: ignored
    assert not stage.has_instances("api")
    remote.release.set()
    assert workers.stop_and_join(5) == []
    workers.check()  # a watch stopped on its own stop is no failure


def test_a_discovered_service_gone_from_the_catalog_stays_while_dc2_has_instances():
    clock = Clock()
    followed = Followed((), discover=True)
    events = EventBus()
    gate = Gatekeeper(GatePolicy(grace=5), followed.views, events.emit, clock)
    stage = FailoverStage(("dc2",), GatePolicy(grace=5), events.emit, clock)
    inbox = Inbox(followed, gate, stage, OverrideStage(None, events.emit), events, clock)
    timer = Quiescence(0.0, 0.0)
    routed = service("w1").__class__("web", service("w1").instances, (Route(path="/web"),))
    inbox.put(Listed(("web",)))
    assert inbox.receive(timer, 0)
    gate.admit(routed)
    stage.follow("web")
    stage.receive(FailoverUpdate(service("r1"), "dc2", 3))

    inbox.put(Gone("web", DEREGISTERED))
    inbox.receive(timer, 0)
    assert inbox.kept == {"web"} and "web" in gate.holds  # the local loss gated as any other
    clock.now = 6
    assert gate.release_expired()
    view = followed.views["web"]
    assert view is not None and view.instances == () and view.routes == (Route(path="/web"),)
    merged = stage.merge(followed.state())
    assert [i.name for i in merged.services[0].instances] == ["dc2:r1"]

    inbox.put(Listed(("web",)))  # back in the catalog: no longer kept (its next read brings w1)
    inbox.receive(timer, 0)
    assert inbox.kept == set()

    inbox.put(Gone("web", DEREGISTERED))
    inbox.receive(timer, 0)
    stage.receive(FailoverUpdate(service(), "dc2", 4))  # dc2 empties too: held by the failover gate
    clock.now = 12
    assert stage.release_expired() and inbox.settle_kept()
    assert "web" not in followed.views and inbox.kept == set()


def test_route_tags_taken_off_drop_a_service_at_once_even_with_failover_instances():
    clock = Clock()
    followed = Followed((), discover=True)
    events = EventBus()
    gate = Gatekeeper(GatePolicy(), followed.views, events.emit, clock)
    stage = FailoverStage(("dc2",), GatePolicy(), events.emit, clock)
    inbox = Inbox(followed, gate, stage, OverrideStage(None, events.emit), events, clock)
    timer = Quiescence(0.0, 0.0)
    inbox.put(Listed(("web",)))
    inbox.receive(timer, 0)
    gate.admit(service("w1"))
    stage.follow("web")
    stage.receive(FailoverUpdate(service("r1"), "dc2", 3))
    inbox.put(Gone("web", NO_ROUTE_TAG))
    inbox.receive(timer, 0)
    assert "web" not in followed.views and inbox.kept == set()


class NoThreads:
    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, name, target, stop=None):
        self.started.append(name)


def test_more_long_polls_than_an_agent_allows_by_default_is_warned_once(caplog):
    workers = NoThreads()
    stage = FailoverStage(("dc2", "dc3"), GatePolicy(), lambda e: None, Clock())
    follows = FailoverFollows(Remote(), stage, lambda m: None, workers, WatchTiming())  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        follows.sync([f"s{i}" for i in range(90)])  # 180 long polls: within
        assert not caplog.records
        follows.sync([f"s{i}" for i in range(92)])
        follows.sync([f"s{i}" for i in range(95)])
    assert len(workers.started) == 190
    assert [r.getMessage()[:60] for r in caplog.records] == [
        "failover: 184 long polls to other datacenters (92 services x"
    ]
