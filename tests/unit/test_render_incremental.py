"""Incremental work gives byte for byte what a full render gives, and the plan a fresh parse gives,
over random sequences of changes (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discovery.haproxy.frame import Rendered
from discovery.haproxy.plan import diff, parse
from discovery.haproxy.planner import Planner
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


# Which services are followed at each step (web always: the default backend), in which order.
followed = st.lists(st.sampled_from(NAMES[1:]), unique=True).map(lambda rest: ("web", *rest))
step_ = st.tuples(change, st.none() | followed)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step_, min_size=1, max_size=12))
def test_incremental_render_and_plan_equal_full_ones(steps):
    incremental, full = Renderer(DEFAULT_TEMPLATE), Renderer(DEFAULT_TEMPLATE, incremental=False)
    planner = Planner()
    services: dict = {n: convert(n, []).service for n in NAMES}
    previous, names = None, NAMES
    for step, now_followed in steps:
        services = state_after(services, step)
        names = now_followed or names  # services come and go, or keep their order
        state = DesiredState(tuple(services[n] for n in names))
        text = incremental.render(state, VALUES, {})
        assert text == full.render(state, VALUES, {})
        if previous is not None:
            assert planner.plan(previous, text) == diff(parse(previous), parse(text))
            assert planner.parsed(text) == parse(text)  # read only around what changed (haproxy/planner.py)
        previous = text
    assert isinstance(previous, Rendered)
    assert incremental._splice  # the bundled template is rendered from frames (discovery/haproxy/frame.py)


def web(*ports: int) -> DesiredState:
    return DesiredState((convert("web", [entry("web", p, None, False) for p in ports]).service,))


BACKEND = """{% macro backend(svc) %}
backend {{ svc.name }}
{% for inst in svc.instances %}
    server {{ inst.name }} {{ inst | server_address }}
{% endfor %}
{% endmacro %}
"""


@pytest.mark.parametrize(
    "loop",
    [
        # reads a service's instances outside cached(): its frame render fails, rendered whole
        "{% for svc in services %}{% if svc.instances %}{{ cached(backend, svc) }}{% endif %}{% endfor %}",
        # reads them in ways Jinja takes an undefined value for: still rendered whole, never stale
        "{% for svc in services %}{% if svc.instances | default([]) %}# up\n{% endif %}{{ cached(backend, svc) }}"
        "{% endfor %}",
        "{% for svc in services %}{% if svc.instances is defined %}# up\n{% endif %}{{ cached(backend, svc) }}"
        "{% endfor %}",
        "{% for svc in services %}{% if 'instances' in svc %}# up\n{% endif %}{{ cached(backend, svc) }}{% endfor %}",
        "{% for svc in services %}{{ svc.get('instances') | length }}{{ cached(backend, svc) }}{% endfor %}",
        "{% for svc in services %}{{ svc | length }}{{ cached(backend, svc) }}{% endfor %}",
        # does something to cached()'s text: its frame differs from a real render, rendered whole
        "{% for svc in services %}{{ cached(backend, svc) | indent(2) }}{% endfor %}",
        "{% for svc in services %}{{ cached(backend, svc) | upper }}{% endfor %}",
    ],
)
def test_a_template_that_does_more_with_services_is_rendered_whole(tmp_path, loop):
    template = tmp_path / "t.cfg.j2"
    template.write_text(BACKEND + loop + "\n")
    incremental, full = Renderer(template), Renderer(template, incremental=False)
    for state in (web(), web(1), web(1, 2), web(), web(3)):  # from none: a frame made then must not go stale
        assert incremental.render(state) == full.render(state)
    assert not incremental._splice


def test_a_value_change_renders_every_backend_again():
    renderer = Renderer(DEFAULT_TEMPLATE)
    state = DesiredState((convert("web", [entry("web", 1, None, False)]).service,))
    renderer.render(state, {**VALUES, "check_interval": "1s"}, {})
    text = renderer.render(state, {**VALUES, "check_interval": "5s"}, {})
    assert "inter 5s" in text and "inter 1s" not in text
    assert text == Renderer(DEFAULT_TEMPLATE, incremental=False).render(state, {**VALUES, "check_interval": "5s"}, {})


def test_a_routing_change_renders_the_frame_again():
    renderer, full = Renderer(DEFAULT_TEMPLATE), Renderer(DEFAULT_TEMPLATE, incremental=False)
    plain = DesiredState((convert("web", [entry("web", 1, None, False)]).service,))
    routed = DesiredState((convert("web", [entry("web", 1, None, False, extra_tag=True)]).service,))
    for state in (plain, routed, plain):
        assert renderer.render(state, VALUES, {}) == full.render(state, VALUES, {})


def test_a_frame_renders_only_the_services_that_changed(tmp_path):
    template = tmp_path / "t.cfg.j2"
    template.write_text(BACKEND + "{% for svc in services %}{{ visit() }}{{ cached(backend, svc) }}{% endfor %}\n")
    renderer = Renderer(template)
    visits: list[int] = []
    renderer._template.globals["visit"] = lambda: visits.append(1) or ""
    one = convert("one", [entry("web", 1, None, False)]).service
    two = convert("two", [entry("web", 2, None, False)]).service
    renderer.render(DesiredState((one, two)))
    visits.clear()
    text = renderer.render(DesiredState((one, convert("two", [entry("web", 3, None, False)]).service)))
    assert visits == []  # the template's loop did not run again: one slot of the frame did
    assert text == "backend one\n    server web-1 10.0.0.2:8001\nbackend two\n    server web-3 10.0.0.4:8003\n"


def test_only_a_changed_service_has_its_context_built(monkeypatch):
    from discovery.state.model import Service

    built: list[str] = []
    as_context = Service.as_context
    monkeypatch.setattr(Service, "as_context", lambda self: built.append(self.name) or as_context(self))
    services = {n: convert(n, [entry(n, 1, None, False)]).service for n in NAMES}
    renderer = Renderer(DEFAULT_TEMPLATE)
    renderer.render(DesiredState(tuple(services.values())), VALUES, {})
    built.clear()
    services["api"] = convert("api", [entry("api", 2, None, False)]).service
    renderer.render(DesiredState(tuple(services.values())), VALUES, {})
    assert built == ["api"]


def test_a_lazy_context_reads_as_the_whole_context():
    from discovery.haproxy.frame import LazyContext

    service = convert("web", [entry("web", 1, 7, False)]).service
    whole = service.as_context()
    for read in (dict, lambda c: dict(c.items()), list, len, lambda c: c.get("instances"), repr):
        assert read(LazyContext(service)) == read(whole)
    assert LazyContext(service) == whole and "settings" in LazyContext(service)
    assert LazyContext(service)["instances"][0]["weight"] == 7
