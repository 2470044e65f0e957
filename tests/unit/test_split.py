"""disco-split: its exact grammar, the weights it gives, and how they reach HAProxy (live)."""

from __future__ import annotations

import pytest

from discovery.haproxy.plan import Set
from discovery.haproxy.planner import Planner
from discovery.haproxy.render import DEFAULT_TEMPLATE, Renderer
from discovery.state import split
from discovery.state.convert import convert
from discovery.state.model import DesiredState


def entry(sid, tags=(), meta=None):
    return {
        "Node": {"Node": "n1", "Address": "10.0.0.1"},
        "Service": {"ID": sid, "Address": "10.0.0.1", "Port": 8080, "Tags": list(tags), "Meta": meta or {}},
        "Checks": [],
    }


def shares(service):
    """Each instance's share of new requests, in percent, from the weights the split set."""
    routed = [i for i in service.instances if not i.backup]
    total = sum(i.weight if i.weight is not None else 1 for i in routed)
    return {i.name: 100 * (i.weight if i.weight is not None else 1) / total for i in routed}


@pytest.mark.parametrize("value", ["v2=5", "v2=5,v3=20", "v2=0", "v2=100", "a.b:c/d@e+f%g-h_i=50", "v1=50,v2=50"])
def test_the_grammar_accepts(value):
    parsed = split.parse(value)
    assert parsed is not None and str(parsed) == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "v2",
        "v2=",
        "=5",
        "v2=101",
        "v2=-1",
        "v2=05",
        "v2=5.0",
        "v2=5 ",
        " v2=5",
        "v2=5, v3=20",
        "v2=5,",
        "v2=5,,v3=1",
        "v2=60,v3=41",
        "v2=5,v2=6",
        "v 2=5",
        "v2=5\nbind",
        "v#2=5",
        "v2=5;v3=1",
        "x" * 65 + "=5",
        ",".join(f"t{i}=1" for i in range(17)),
    ],
)
def test_the_grammar_refuses(value):
    assert split.parse(value) is None


def test_three_stable_one_canary_at_10_percent():
    meta = {"disco-split": "v2=10"}
    conv = convert(
        "web", [entry("s1", (), meta), entry("s2", (), meta), entry("s3", (), meta), entry("c1", ["v2"], meta)]
    )
    got = shares(conv.service)
    assert got["c1"] == pytest.approx(10, abs=0.2)
    assert sum(got[s] for s in ("s1", "s2", "s3")) == pytest.approx(90, abs=0.2)
    assert max(i.weight for i in conv.service.instances) == 256
    assert conv.skipped == ()


def test_shares_hold_whatever_the_counts_on_each_side():
    meta = {"disco-split": "v2=5,v3=20"}
    entries = [entry(f"s{i}", (), meta) for i in range(50)]
    entries += [entry("a", ["v2"], meta), entry("b", ["v3"], meta), entry("c", ["v3"], meta)]
    got = shares(convert("web", entries).service)
    assert got["a"] == pytest.approx(5, abs=0.2)
    assert got["b"] + got["c"] == pytest.approx(20, abs=0.2)
    assert sum(v for k, v in got.items() if k.startswith("s")) == pytest.approx(75, abs=0.3)


def test_disco_weight_divides_a_sides_share_and_backups_are_left_alone():
    meta = {"disco-split": "v2=20"}
    conv = convert(
        "web",
        [
            entry("s1", (), {**meta, "disco-weight": "3"}),
            entry("s2", (), meta),
            entry("c1", ["v2"], meta),
            entry("b1", ["backup"], {**meta, "disco-weight": "7"}),
        ],
    )
    got = shares(conv.service)
    assert got["c1"] == pytest.approx(20, abs=0.3)
    assert got["s1"] == pytest.approx(60, abs=0.3) and got["s2"] == pytest.approx(20, abs=0.3)
    assert next(i for i in conv.service.instances if i.name == "b1").weight == 7


def test_a_tag_no_instance_carries_gives_its_share_to_the_rest_with_one_note():
    meta = {"disco-split": "v2=5,v3=20"}
    conv = convert("web", [entry("s1", (), meta), entry("s2", (), meta), entry("a", ["v2"], meta)])
    assert shares(conv.service)["a"] == pytest.approx(5, abs=0.2)
    assert conv.skipped == ("web: disco-split v2=5,v3=20: no instance carries tag 'v3'; its 20% goes to the rest",)


def test_zero_percent_takes_new_requests_away_and_everyone_tagged_shares_everything():
    meta = {"disco-split": "v2=0"}
    conv = convert("web", [entry("s1", (), meta), entry("c1", ["v2"], meta)])
    assert {i.name: i.weight for i in conv.service.instances} == {"s1": 256, "c1": 0}
    conv = convert(
        "web", [entry("c1", ["v2"], {"disco-split": "v2=10"}), entry("c2", ["v2"], {"disco-split": "v2=10"})]
    )
    assert {i.weight for i in conv.service.instances} == {256}
    conv = convert("web", [entry("c1", ["v2"], meta)])
    assert conv.service.instances[0].weight is None and "ignored" in conv.skipped[0]


def test_a_small_share_never_rounds_to_zero():
    meta = {"disco-split": "v2=1"}
    entries = [entry("c1", ["v2"], meta), *(entry(f"s{i}", (), meta) for i in range(400))]
    assert min(i.weight for i in convert("web", entries).service.instances) >= 1


def test_instances_disagreeing_on_the_split_follow_the_majority():
    conv = convert(
        "web",
        [
            entry("s1", (), {"disco-split": "v2=50"}),
            entry("s2", (), {"disco-split": "v2=10"}),
            entry("c1", ["v2"], {"disco-split": "v2=10"}),
        ],
    )
    assert str(conv.service.settings.split) == "v2=10"
    assert conv.skipped == ("web: instances disagree on disco-split: v2=10 (c1, s2); v2=50 (s1); using v2=10",)


@pytest.mark.parametrize("value", ["v2=5\nbind :1", "v2=60,v3=41"])
def test_a_refused_split_is_one_note_and_no_weights(value):
    conv = convert("web", [entry("s1", (), {"disco-split": value}), entry("c1", ["v2"])])
    assert conv.service.settings.split is None
    assert all(i.weight is None for i in conv.service.instances)
    assert len(conv.skipped) == 1 and "\n" not in conv.skipped[0]
    assert "meta value" in conv.skipped[0] or "disco-split 'v2=60,v3=41' is not TAG=PERCENT" in conv.skipped[0]


def test_changing_the_split_or_the_instances_is_weights_only_live():
    renderer, planner = Renderer(DEFAULT_TEMPLATE), Planner()
    values = {"frontend_port": "8080", "stats_port": "8404"}

    def text(pct, extra=()):
        meta = {"disco-split": f"v2={pct}"}
        entries = [entry("s1", (), meta), entry("s2", (), meta), entry("c1", ["v2"], meta), *extra]
        return renderer.render(DesiredState((convert("web", entries).service,)), values)

    before, after = text(10), text(50)
    plan = planner.plan(before, after)
    assert plan.live and plan.ops and all(isinstance(op, Set) and op.option == "weight" for op in plan.ops)
    plan = planner.plan(after, text(50, [entry("s3", (), {"disco-split": "v2=50"})]))
    assert plan.live  # an instance joins: it is added, the others' weights follow
