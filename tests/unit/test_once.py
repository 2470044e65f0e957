"""``disco watch --once`` waits for the overrides' and each failover datacenter's first answer, at
most EXTRA_WAIT, then says what is missing in one line and goes on."""

from __future__ import annotations

import logging

from discovery.consul.discover import Listed
from discovery.consul.failover_watch import FailoverReach, FailoverUpdate
from discovery.consul.overrides_watch import KV, OverridesUpdate
from discovery.consul.watch import ConsulRequest
from discovery.pipeline.failover import FailoverStage
from discovery.pipeline.followed import Followed
from discovery.pipeline.once import EXTRA_WAIT, OnceGate
from discovery.pipeline.overrides import OverrideStage
from discovery.state.gate import GatePolicy
from discovery.state.overrides import Overrides

from .test_failover import Clock, service


def gate(clock: Clock, overrides: bool = True) -> tuple[OnceGate, FailoverStage, OverrideStage, Followed]:
    followed = Followed(("web",), discover=False)
    followed.views["web"] = service("w1")
    stage = FailoverStage(("dc2", "dc3"), GatePolicy(), lambda e: None, clock)
    stage.follow("web")
    kv = OverrideStage(None, lambda e: None)
    return OnceGate(followed, kv if overrides else None, stage, clock, 30.0), stage, kv, followed


def test_the_pass_waits_for_the_overrides_and_every_failover_answer():
    clock = Clock()
    once, stage, kv, _ = gate(clock)
    assert not once.ready() and once.missing() == ["the overrides", "web in dc2", "web in dc3"]
    kv.receive(OverridesUpdate(Overrides(), 3))
    stage.receive(FailoverUpdate(service("r1"), "dc2", 4))
    assert not once.ready() and once.missing() == ["web in dc3"]
    stage.receive(FailoverReach("web", "dc3", True))  # a datacenter that answers: its instances are awaited
    assert not once.ready()
    stage.receive(FailoverReach("web", "dc3", False, "no answer"))  # one that fails is not
    assert once.ready()


def test_past_the_deadline_what_is_missing_is_said_once_and_the_pass_goes_on(caplog):
    clock = Clock()
    once, _, _, _ = gate(clock, overrides=False)
    assert not once.ready()
    clock.now = EXTRA_WAIT + 0.1
    with caplog.at_level(logging.WARNING):
        assert once.ready() and once.ready()
    lines = [r.getMessage() for r in caplog.records if "--once" in r.getMessage()]
    assert lines == ["--once: no answer within 10s for web in dc2, web in dc3; going on without them"]


def test_a_failed_read_of_the_overrides_is_not_waited_for_and_the_services_come_first():
    clock = Clock()
    once, stage, _, followed = gate(clock)
    for dc in ("dc2", "dc3"):
        stage.receive(FailoverUpdate(service(), dc, 1))
    once.on_event(ConsulRequest(KV, "error"))
    assert once.ready()
    followed.apply(Listed(("web", "api")), lambda _n, _g: True, lambda e: None)  # api listed, not read yet
    clock.now = 100
    assert not once.ready()  # a service not read yet: never past the deadline (that is once_timeout's error)
