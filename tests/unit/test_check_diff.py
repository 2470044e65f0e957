"""Comparing two answers of /v1/health/state/any as text finds the same changed services as
decoding both whole (hypothesis: random edits, compact and indented JSON, hostile strings)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discovery.consul.catalog_watch import check_digest, dirty_services
from discovery.consul.check_diff import changed_checks, common_prefix, common_suffix

SERVICES = ["web", "api", "shop", ""]  # "" is a node check (serfHealth)
TRICKY = st.sampled_from(["", "ok", '},{"Node":"n9"', '{\n    "Node": "x"', "]", "[", "\\", "é ünï"])


@st.composite
def check(draw, i):
    service = draw(st.sampled_from(SERVICES))
    # (Node, CheckID) is unique in Consul's answer, as here (a node check: serfHealth on each node)
    return {
        "Node": f"n{draw(st.integers(0, 3))}",
        "CheckID": f"c{i}" if service else f"serfHealth{i}",
        "Name": "x",
        "Status": draw(st.sampled_from(["passing", "warning", "critical"])),
        "Notes": draw(TRICKY),
        "Output": draw(TRICKY),
        "ServiceID": f"{service}-{i}" if service else "",
        "ServiceName": service,
        "ServiceTags": draw(st.lists(TRICKY, max_size=2)),
        "Type": "ttl",
        "Definition": {},
        "CreateIndex": i,
        "ModifyIndex": draw(st.integers(i, i + 5)),
    }


@st.composite
def answers(draw):
    n = draw(st.integers(0, 12))
    old = [draw(check(i)) for i in range(n)]
    new = list(old)
    for step in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["add", "remove", "modify"]))
        if op == "add" or not new:
            new.insert(draw(st.integers(0, len(new))), draw(check(100 + step)))
        elif op == "remove":
            new.pop(draw(st.integers(0, len(new) - 1)))
        else:
            k = draw(st.integers(0, len(new) - 1))
            new[k] = dict(new[k], Status=draw(st.sampled_from(["passing", "critical"])), Output=draw(TRICKY))
    indent = draw(st.sampled_from([None, 4]))
    separators = (",", ":") if indent is None else None
    return json.dumps(old, indent=indent, separators=separators), json.dumps(new, indent=indent, separators=separators)


NODES = {f"n{i}": {"web", "api", "shop"} for i in range(4)}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers())
def test_the_text_diff_finds_what_decoding_everything_finds(pair):
    old, new = pair
    expected = dirty_services(check_digest(json.loads(old)), check_digest(json.loads(new)), SERVICES[:3], NODES)
    region = changed_checks(old, new)
    assert region is not None  # well-formed answers always take the fast path
    assert dirty_services(check_digest(region[0]), check_digest(region[1]), SERVICES[:3], NODES) == expected


def test_one_changed_check_in_many_decodes_one_check():
    checks = [
        {"Node": f"n{i % 40}", "CheckID": f"service:i{i}", "Status": "passing", "ServiceName": f"svc{i % 500}"}
        for i in range(10_000)
    ]
    old = json.dumps(checks, indent=4)
    checks[5000] = dict(checks[5000], Status="critical")
    before, after = changed_checks(old, json.dumps(checks, indent=4))
    assert [c["CheckID"] for c in before] == [c["CheckID"] for c in after] == ["service:i5000"]


def test_prefix_and_suffix():
    a, b = "x" * 200_000 + "abc" + "y" * 70_000, "x" * 200_000 + "aXc" + "y" * 70_000
    assert common_prefix(a, b) == 200_001
    assert common_suffix(a, b, len(a) - 200_001) == 70_001
    assert common_prefix("abc", "abc") == 3 and common_prefix("", "a") == 0


def test_not_checks_is_none_not_a_guess():
    assert changed_checks('[{"Node": 1}]', '{"oops": true}') is None
