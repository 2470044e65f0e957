"""Incremental work gives byte for byte what a full render gives, and the plan a fresh parse gives,
over random sequences of changes (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discovery.haproxy.plan import Planner, diff, parse
from discovery.haproxy.render import DEFAULT_TEMPLATE, Renderer
from discovery.state.convert import convert
from discovery.state.model import DesiredState

NAMES = ("web", "api", "shop", "redis")
TAGS = {
    "web": [],
    "api": ["urlprefix-/api strip=/api"],
    "shop": ["urlprefix-shop.example.com/"],
    "redis": ["urlprefix-:6379 proto=tcp"],
}
VALUES = {"frontend_port": "80", "tcp_ports": "6379", "admin_socket": "/run/admin.sock"}


def entry(service: str, i: int, weight: int | None, backup: bool, extra_tag: bool = False) -> dict:
    meta = {"disco-weight": str(weight)} if weight is not None else {}
    if service == "shop":
        meta["disco-sticky"] = "SHOPID"
    tags = TAGS[service] + (["backup"] if backup else []) + (["urlprefix-/extra"] if extra_tag else [])
    return {
        "Node": {"Node": f"n{i % 3}", "Address": "10.0.0.1"},
        "Service": {
            "ID": f"{service}-{i}",
            "Service": service,
            "Address": f"10.0.{i // 200}.{i % 200 + 1}",
            "Port": 8000 + i,
            "Tags": tags,
            "Meta": meta,
        },
        "Checks": [{"CheckID": f"c{i}", "Status": "passing", "ServiceID": f"{service}-{i}"}],
    }


instance = st.tuples(st.integers(0, 30), st.none() | st.integers(0, 256), st.booleans())
change = st.tuples(st.sampled_from(NAMES), st.lists(instance, max_size=6, unique_by=lambda t: t[0]), st.integers(0, 9))


def state_after(services: dict, step: tuple) -> dict:
    name, instances, salt = step
    # now and then web gains a route tag: the routing table (and every frontend) changes
    entries = [entry(name, i, w, b, extra_tag=salt == 0 and name == "web") for i, w, b in instances]
    services = dict(services)
    services[name] = convert(name, entries, passing_only=True).service
    return services


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(change, min_size=1, max_size=12))
def test_incremental_render_and_plan_equal_full_ones(steps):
    incremental, full = Renderer(DEFAULT_TEMPLATE), Renderer(DEFAULT_TEMPLATE, incremental=False)
    planner = Planner()
    services: dict = {n: convert(n, []).service for n in NAMES}
    previous = None
    for step in steps:
        services = state_after(services, step)
        state = DesiredState(tuple(services[n] for n in NAMES))
        text = incremental.render(state, VALUES, {})
        assert text == full.render(state, VALUES, {})
        if previous is not None:
            assert planner.plan(previous, text) == diff(parse(previous), parse(text))
        previous = text


def test_a_value_change_renders_every_backend_again():
    renderer = Renderer(DEFAULT_TEMPLATE)
    state = DesiredState((convert("web", [entry("web", 1, None, False)]).service,))
    renderer.render(state, {**VALUES, "check_interval": "1s"}, {})
    text = renderer.render(state, {**VALUES, "check_interval": "5s"}, {})
    assert "inter 5s" in text and "inter 1s" not in text
