from discovery.state.gate import GatePolicy, Hold, decide, release, suspect
from discovery.state.model import Instance, Service


def svc(*names: str) -> Service:
    return Service("web", tuple(Instance(n, "n1", "10.0.0.1", 80 + i) for i, n in enumerate(names)))


KEEP = GatePolicy(share=1.0, grace=30, when_empty="keep")
EMPTY = GatePolicy(share=1.0, grace=30, when_empty="empty")


def test_only_removing_the_share_is_suspect():
    assert not suspect(None, svc(), 1.0)
    assert not suspect(svc(), svc(), 1.0)
    assert not suspect(svc("a", "b"), svc("a"), 1.0)
    assert suspect(svc("a", "b"), svc(), 1.0)
    assert suspect(svc("a", "b", "c", "d"), svc("a", "b"), 0.5)
    assert not suspect(svc("a", "b", "c", "d"), svc("a", "b", "c"), 0.5)
    assert suspect(svc("a", "b"), svc("c", "d"), 1.0)  # all replaced at once


def test_healthy_consul_and_a_partial_change_apply_at_once():
    assert decide(KEEP, svc("a", "b"), svc("a"), healthy=True) is None


def test_everything_gone_while_consul_has_no_leader_is_held():
    assert decide(EMPTY, svc("a", "b"), svc(), healthy=False) == "Consul has no leader"


def test_everything_gone_with_a_healthy_consul_follows_when_empty():
    assert decide(KEEP, svc("a"), svc(), healthy=True) == "every instance is gone"
    assert decide(EMPTY, svc("a"), svc(), healthy=True) is None


def test_hold_released_after_grace_or_when_consul_recovers():
    hold = Hold(svc(), 100.0, "Consul has no leader")
    assert not release(EMPTY, hold, 110.0, healthy=False)
    assert release(EMPTY, hold, 110.0, healthy=True)
    assert release(EMPTY, hold, 130.0, healthy=False)
    assert not release(KEEP, hold, 110.0, healthy=True)  # healthy, but still empty: keep for the grace
    assert release(KEEP, Hold(svc(), 100.0, "every instance is gone"), 130.0, healthy=True)
