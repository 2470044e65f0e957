"""Consul answers -> instances: the checks on untrusted catalog data."""

import pytest

from discovery.state.convert import convert


def entry(
    sid="web-1",
    node="n1",
    address="10.0.0.1",
    port=8080,
    tags=(),
    meta=None,
    checks=("passing",),
    node_address="10.9.9.9",
):
    return {
        "Node": {"Node": node, "Address": node_address},
        "Service": {
            "ID": sid,
            "Service": "web",
            "Address": address,
            "Port": port,
            "Tags": list(tags),
            "Meta": meta or {},
        },
        "Checks": [{"Status": s} for s in checks],
    }


def test_instances_are_sorted_and_complete():
    conv = convert("web", [entry("web-2", address="10.0.0.2"), entry("web-1", tags=["b", "a"], meta={"v": "1"})])
    assert [i.id for i in conv.service.instances] == ["web-1", "web-2"]
    first = conv.service.instances[0]
    assert (first.address, first.port, first.tags, first.meta) == ("10.0.0.1", 8080, ("a", "b"), (("v", "1"),))
    assert conv.skipped == ()


def test_order_of_answers_does_not_matter():
    a, b = entry("web-1"), entry("web-2", address="10.0.0.2")
    assert convert("web", [a, b]).service == convert("web", [b, a]).service


def test_node_address_used_when_service_has_none():
    assert convert("web", [entry(address="")]).service.instances[0].address == "10.9.9.9"


@pytest.mark.parametrize(
    "field, value",
    [
        ("sid", "web\n    server evil 6.6.6.6:80"),
        ("sid", "has space"),
        ("sid", "x" * 10_000),
        ("sid", "#comment"),
        ("node", 'quote"node'),
        ("address", "not an address!"),
        ("address", "1.2.3.4\nbind :1"),
        ("address", "999.1.1.1"),
        ("port", 0),
        ("port", 70000),
        ("port", "80"),
        ("port", True),
    ],
)
def test_unusable_instance_is_skipped_with_a_reason_and_others_kept(field, value):
    conv = convert("web", [entry(**{field: value}), entry("good", address="10.0.0.5")])
    assert [i.id for i in conv.service.instances] == ["good"]
    assert len(conv.skipped) == 1 and conv.skipped[0].startswith("skipped web instance")
    assert "\n" not in conv.skipped[0]


@pytest.mark.parametrize("tag", ["a b", "x\ny", "#", "back\\slash", 'q"', "${HOME}", "t" * 300])
def test_unsafe_tags_are_dropped_not_the_instance(tag):
    conv = convert("web", [entry(tags=["ok", tag])])
    assert conv.service.instances[0].tags == ("ok",)
    assert any("dropped" in note for note in conv.skipped)


def test_unsafe_meta_is_dropped():
    conv = convert("web", [entry(meta={"weight": "10", "evil": "a\nb", "bad key": "v"})])
    assert conv.service.instances[0].meta == (("weight", "10"),)
    assert len(conv.skipped) == 2


def test_same_id_on_two_nodes_gets_node_qualified_names():
    conv = convert("web", [entry("web", node="n1"), entry("web", node="n2", address="10.0.0.2")])
    assert sorted(i.name for i in conv.service.instances) == ["n1:web", "n2:web"]


def test_true_duplicate_is_skipped_once():
    conv = convert("web", [entry("web", node="n1"), entry("web", node="n1")])
    assert len(conv.service.instances) == 1
    assert any("duplicate" in n for n in conv.skipped)


def test_health_is_the_worst_check():
    assert convert("web", [entry(checks=("passing", "warning"))]).service.instances[0].health == "warning"
    assert convert("web", [entry(checks=())]).service.instances[0].health == "passing"


def test_ipv6_addresses_are_accepted():
    assert convert("web", [entry(address="fd00::1")]).service.instances[0].address == "fd00::1"


def test_garbage_entries_are_skipped():
    conv = convert("web", ["nonsense", {"Service": None, "Node": None}])
    assert conv.service.instances == ()
    assert len(conv.skipped) == 2
