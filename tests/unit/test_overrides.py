"""Operator overrides from Consul KV: the documents' exact grammar, and what they do to the desired state."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discovery.haproxy.render import DEFAULT_TEMPLATE, Renderer
from discovery.state import overrides as ov
from discovery.state.convert import convert
from discovery.state.model import DesiredState
from discovery.state.routing import table

P = "disco/overrides/"


def entry(sid, tags=(), meta=None, port=8080):
    return {
        "Node": {"Node": "n1", "Address": "10.0.0.1"},
        "Service": {"ID": sid, "Address": "10.0.0.1", "Port": port, "Tags": list(tags), "Meta": meta or {}},
        "Checks": [],
    }


def doc(**fields):
    return json.dumps(fields).encode()


def test_a_full_document_is_read():
    got = ov.read(
        P,
        [
            (
                P + "web",
                doc(drain=["w2"], disable=["w3"], weight={"w1": 10}, disable_routes=["/api"], note="INC-42"),
            )
        ],
    )
    assert got.malformed == ()
    assert got.items == (ov.Override(P + "web", "web", ("w2",), ("w3",), (("w1", 10),), ("/api",), "INC-42"),)
    assert got.items[0].describe() == "drain w2; disable w3; weight w1=10; disable routes /api (INC-42)"


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"{", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "not a JSON object"),
        (doc(drian=["a"]), "unknown field 'drian'"),
        (doc(drain="w2"), "drain must be a list"),
        (doc(drain=["w 2"]), "is not an instance ID"),
        (doc(drain=["w2\nbind :1"]), "is not an instance ID"),
        (doc(disable=[3]), "is not an instance ID"),
        (doc(weight={"w1": 257}), "not an integer 0..256"),
        (doc(weight={"w1": "10"}), "not an integer 0..256"),
        (doc(weight={"w1": True}), "not an integer 0..256"),
        (doc(weight={"w1": 1.5}), "not an integer 0..256"),
        (doc(weight=[["w1", 1]]), "weight must be an object"),
        (doc(disable_routes=["/api x"]), "is not HOST/PATH"),
        (doc(disable_routes=["api"]), "is not HOST/PATH"),
        (doc(note="a\nb"), "note must be printable"),
        (doc(note="x" * 201), "note must be printable"),
        (doc(drain=["w2"], disable=["w2"]), "both drained and disabled"),
        (b" " * (ov.MAX_BYTES + 1), "larger than"),
    ],
)
def test_a_malformed_document_is_one_reason_naming_the_key_and_the_others_apply(raw, reason):
    got = ov.read(P, [(P + "api", raw), (P + "web", doc(drain=["w2"]))])
    assert [o.service for o in got.items] == ["web"]
    assert len(got.malformed) == 1 and got.malformed[0][0] == P + "api"
    assert reason in got.malformed[0][1] and "\n" not in got.malformed[0][1]


def test_keys_must_name_a_service_and_folders_are_skipped():
    got = ov.read(P, [(P, b""), (P + "a/b", doc()), (P + "bad name", doc()), ("other/web", doc(drain=["x"]))])
    assert got.items == ()
    assert [k for k, _ in got.malformed] == [P + "a/b", P + "bad name"]


@pytest.mark.parametrize(
    "prefix, ok",
    [
        ("disco/overrides/", True),
        ("", True),
        ("a/", True),
        ("a", False),
        ("/a/", False),
        ("a b/", False),
        ("a/../", False),
        ("./", False),
        ("a.b/c/", True),
        ("a?x/", False),
    ],
)
def test_the_prefix_grammar(prefix, ok):
    assert (ov.check_prefix(prefix) is None) is ok


def state():
    web = convert("web", [entry("w1"), entry("w2"), entry("w3", meta={"disco-weight": "5"})]).service
    api = convert("api", [entry("a1", ["urlprefix-/api", "urlprefix-shop.example.com/"])]).service
    return DesiredState((web, api))


def test_apply_pins_weights_lists_runtime_states_and_takes_routes_out():
    overrides = ov.read(
        P,
        [
            (P + "web", doc(drain=["w2"], disable=["w3"], weight={"w1": 7, "gone": 3})),
            (P + "api", doc(disable_routes=["/api", "nowhere.example.com/"])),
            (P + "db", doc(drain=["d1"])),
        ],
    )
    applied = ov.apply(state(), overrides)
    web = applied.state.services[0]
    assert {i.name: i.weight for i in web.instances} == {"w1": 7, "w2": None, "w3": 5}
    assert applied.admin == {("web", "w2"): "drain", ("web", "w3"): "maint"}
    routes = table(applied.state.services)
    assert [(r.service, r.route.path) for r in routes.http] == [("api", "/"), ("web", "/")]
    assert sorted(applied.unmatched) == [
        "disco/overrides/api: api has no route 'nowhere.example.com/'",
        "disco/overrides/db: no service 'db' is followed",
        "disco/overrides/web: web has no instance 'gone' now",
    ]


def test_star_takes_every_route_out_default_route_included_and_deleting_ends_it():
    applied = ov.apply(state(), ov.read(P, [(P + "web", doc(disable_routes=["*"]))]))
    assert {r.service for r in table(applied.state.services).http} == {"api"}
    assert ov.apply(state(), ov.read(P, [])).state == state()


def test_a_pinned_weight_wins_over_the_split():
    meta = {"disco-split": "v2=50"}
    web = convert("web", [entry("s1", (), meta), entry("c1", ["v2"], meta)]).service
    applied = ov.apply(DesiredState((web,)), ov.read(P, [(P + "web", doc(weight={"c1": 1}))]))
    assert {i.name: i.weight for i in applied.state.services[0].instances} == {"s1": 256, "c1": 1}


def test_counts_per_kind_for_the_metrics():
    got = ov.read(P, [(P + "web", doc(drain=["a"], weight={"a": 1})), (P + "api", doc(drain=["b"]))])
    assert ov.in_force(got) == {"drain": 2, "disable": 0, "weight": 1, "disable_routes": 0}


HOSTILE = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["w1", "w2", "\n", "backend x", "#", "'", '"', "%[src]", "/api", "*", ":5432", "${x}", "a b"]),
)
VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=False), HOSTILE),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(HOSTILE, inner, max_size=3)),
    max_leaves=8,
)
DOC = st.dictionaries(st.sampled_from([*ov.FIELDS, "other"]), VALUE, max_size=5)
RENDERER = Renderer(DEFAULT_TEMPLATE)


@settings(max_examples=200, deadline=None)
@given(DOC, st.binary(max_size=40))
def test_hostile_documents_never_reach_the_config_unchecked(fields, junk):
    got = ov.read(P, [(P + "web", json.dumps(fields).encode()), (P + "api", junk)])
    assert all("\n" not in reason for _, reason in got.malformed)
    applied = ov.apply(state(), got)
    text = RENDERER.render(applied.state, {"frontend_port": "8080", "stats_port": "8404"})
    baseline = RENDERER.render(state(), {"frontend_port": "8080", "stats_port": "8404"})
    new_lines = set(text.splitlines()) - set(baseline.splitlines())
    for line in new_lines:  # only weights change on server lines, or a rule disappears
        assert line.strip().startswith(("server w", "server a", "acl r", "http-request set-var", "use_backend", "#")), (
            line
        )
    assert set(applied.admin.values()) <= {"drain", "maint"}


def test_an_instance_is_named_by_its_id_everywhere_or_by_its_server_name_alone():
    from discovery.state.failover import merge

    local = convert("web", [entry("w1"), entry("r1")]).service
    merged = merge(local, {"dc2": convert("web", [entry("r1")]).service}, ("dc2",), [])
    state = DesiredState((merged,))
    by_id = ov.apply(state, ov.read(P, [(P + "web", doc(drain=["r1"]))]))
    assert by_id.admin == {("web", "r1"): "drain", ("web", "dc2:r1"): "drain"}
    by_name = ov.apply(state, ov.read(P, [(P + "web", doc(disable=["dc2:r1"], weight={"dc2:r1": 4, "r1": 9}))]))
    assert by_name.admin == {("web", "dc2:r1"): "maint"} and by_name.unmatched == ()
    assert {i.name: i.weight for i in by_name.state.services[0].instances} == {"r1": 9, "w1": None, "dc2:r1": 4}
