"""The gate at work (pure logic, fake clock): holds decided from the leader probe's answers, no I/O."""

from __future__ import annotations

from discovery.pipeline.events import Held, Released
from discovery.pipeline.gatekeeper import ASKING, Gatekeeper, LeaderStatus
from discovery.state.gate import GatePolicy
from discovery.state.model import Instance, Service


def service(*ids: str) -> Service:
    return Service("web", tuple(Instance(id=i, name=i, node="n1", address="10.0.0.1", port=80) for i in ids))


def gatekeeper(when_empty="keep", grace=30.0):
    now, events = [100.0], []
    services = {"web": service("a", "b")}
    gate = Gatekeeper(GatePolicy(1.0, grace, when_empty), services, events.append, lambda: now[0])
    return gate, services, events, now


def test_ordinary_changes_pass_and_ask_nothing():
    gate, services, _events, _ = gatekeeper()
    assert gate.admit(service("a"))
    assert services["web"] == service("a") and not gate.holds and not gate.probe_wanted.is_set()


def test_a_suspect_change_is_held_until_the_probe_answers():
    gate, services, events, _ = gatekeeper(when_empty="empty")
    assert not gate.admit(service())
    assert gate.holds["web"].reason == ASKING and gate.probe_wanted.is_set() and events == []
    assert gate.on_leader(LeaderStatus(healthy=True))  # healthy and --when-empty empty: let through, quietly
    assert services["web"] == service() and events == [] and not gate.probe_wanted.is_set()


def test_no_leader_holds_and_reports_then_releases_when_the_leader_is_back():
    gate, services, events, now = gatekeeper(when_empty="empty")
    gate.admit(service())
    assert not gate.on_leader(LeaderStatus(healthy=False))
    assert events == [Held("web", 2, 0, "Consul has no leader", 30.0)] and services["web"] == service("a", "b")
    now[0] += 2
    assert gate.on_leader(LeaderStatus(healthy=True))
    assert services["web"] == service() and events[-1] == Released("web", 0, 2.0, ended=False)


def test_instances_coming_back_end_a_reported_hold():
    gate, services, events, _ = gatekeeper(when_empty="keep")
    gate.admit(service())
    gate.on_leader(LeaderStatus(healthy=True))
    assert gate.holds["web"].reason == "every instance is gone"
    assert not gate.admit(service("c"))  # still all of a, b gone: asked again, reason kept meanwhile
    assert gate.holds["web"].reason == "every instance is gone"
    assert gate.on_leader(LeaderStatus(healthy=True))
    assert services["web"] == service("c") and events[-1] == Released("web", 1, 0.0, ended=True)


def test_grace_time_releases_whatever_consul_says():
    gate, services, _events, now = gatekeeper(when_empty="keep", grace=5.0)
    gate.admit(service())
    gate.on_leader(LeaderStatus(healthy=False))
    assert gate.next_expiry() == 105.0 and not gate.release_expired()
    now[0] = 105.0
    assert gate.release_expired() and services["web"] == service() and not gate.holds


def test_a_restarted_watcher_judges_its_first_view_against_what_haproxy_runs():
    """No view yet, but HAProxy serves web-a and web-b: a first answer with no instance is held
    (the pipeline renders nothing meanwhile, so HAProxy keeps serving them); a first answer that
    keeps some passes, and from then on the views are the reference."""
    now, events = [0.0], []
    services: dict[str, Service | None] = {"web": None, "api": None}
    gate = Gatekeeper(GatePolicy(1.0, 30.0, "keep"), services, events.append, lambda: now[0])
    gate.remember({"web": ("a", "b"), "api": ("x",), "other": ("y",), "empty": ()})
    assert not gate.admit(service())
    assert services["web"] is None and gate.probe_wanted.is_set()
    assert not gate.on_leader(LeaderStatus(healthy=True))
    assert events == [Held("web", 2, 0, "every instance is gone", 30.0)]
    assert gate.admit(service("b"))  # instances back: the hold ends, the view is set
    assert services["web"] == service("b") and not gate.holds
    assert gate.admit(service("b", "c"))
    assert not gate.admit(service("a"))  # judged against the view (b, c), not the baseline
    api = Service("api", tuple(Instance(id=i, node="n", address="10.0.0.2", port=80) for i in ("x", "x2")))
    assert gate.admit(api) and services["api"] == api  # keeps x: an ordinary first view


def test_without_a_running_config_the_first_view_is_taken_as_it_is():
    services: dict[str, Service | None] = {"web": None}
    gate = Gatekeeper(GatePolicy(), services, [].append, lambda: 0.0)
    gate.remember({})
    assert gate.admit(service()) and services["web"] == service()
