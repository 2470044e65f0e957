"""disco-* meta and the backup tag: grammars, the majority rule, and what the template makes of them."""

from __future__ import annotations

import pytest

from discovery.haproxy.plan import Set
from discovery.haproxy.planner import Planner
from discovery.haproxy.render import DEFAULT_TEMPLATE, Renderer
from discovery.state.convert import convert
from discovery.state.model import DesiredState, ServiceSettings


def entry(sid, meta=None, tags=(), port=8080):
    return {
        "Node": {"Node": "n1", "Address": "10.0.0.1"},
        "Service": {"ID": sid, "Address": "10.0.0.1", "Port": port, "Tags": list(tags), "Meta": meta or {}},
        "Checks": [],
    }


def test_settings_and_instance_settings_are_read():
    conv = convert(
        "web",
        [
            entry(
                "a",
                {
                    "disco-check": "/ping",
                    "disco-balance": "leastconn",
                    "disco-sticky": "SRV",
                    "disco-maxconn": "50",
                    "disco-https-only": "true",
                    "disco-weight": "7",
                },
                ["backup"],
            )
        ],
    )
    assert conv.service.settings == ServiceSettings("/ping", "leastconn", "SRV", 50, True)
    inst = conv.service.instances[0]
    assert (inst.weight, inst.backup, inst.tags) == (7, True, ("backup",))
    assert conv.skipped == ()


@pytest.mark.parametrize(
    "key, value",
    [
        ("disco-check", "health"),
        ("disco-check", "/a/../b"),
        ("disco-check", "/a%20"),
        ("disco-balance", "uri"),
        ("disco-balance", "roundrobin\nbind"),
        ("disco-sticky", "a=b"),
        ("disco-sticky", ".x"),
        ("disco-sticky", "x" * 65),
        ("disco-maxconn", "0"),
        ("disco-maxconn", "-1"),
        ("disco-maxconn", "100001"),
        ("disco-maxconn", "07"),
        ("disco-https-only", "yes"),
        ("disco-weight", "257"),
        ("disco-weight", "-1"),
        ("disco-weight", "1.5"),
        ("disco-weight", ""),
        ("disco-idle-timeout", "0"),
        ("disco-idle-timeout", "25d"),
        ("disco-idle-timeout", "1m30s"),
        ("disco-idle-timeout", "90"),
        ("disco-idle-timeout", "1h\n"),
    ],
)
def test_a_bad_setting_is_dropped_from_that_instance_with_one_line(key, value):
    conv = convert(
        "web", [entry("a", {key: value, "disco-balance": "first"} if key != "disco-balance" else {key: value})]
    )
    assert len(conv.service.instances) == 1
    assert conv.service.instances[0].weight is None
    assert len(conv.skipped) == 1 and "'a'" in conv.skipped[0] and "\n" not in conv.skipped[0]


def test_disagreeing_instances_majority_wins_and_both_sides_are_named():
    conv = convert(
        "web",
        [
            entry("a", {"disco-balance": "leastconn"}),
            entry("b", {"disco-balance": "first"}),
            entry("c", {"disco-balance": "first"}),
        ],
    )
    assert conv.service.settings.balance == "first"
    assert conv.skipped == ("web: instances disagree on disco-balance: first (b, c); leastconn (a); using first",)


def test_a_tie_goes_to_the_lowest_instance_id_and_unset_counts_as_a_side():
    conv = convert("web", [entry("b", {"disco-maxconn": "10"}), entry("a")])
    assert conv.service.settings.maxconn == 0  # a (unset) is the lowest ID
    assert "unset (a); 10 (b)" in conv.skipped[0]
    conv = convert("web", [entry("a", {"disco-maxconn": "10"}), entry("b")])
    assert conv.service.settings.maxconn == 10


def render(*services, **values):
    return Renderer(DEFAULT_TEMPLATE).render(DesiredState(tuple(services)), values)


def test_template_server_options_and_backend_settings():
    web = convert(
        "web",
        [
            entry(
                "a",
                {
                    "disco-weight": "3",
                    "disco-maxconn": "20",
                    "disco-balance": "source",
                    "disco-sticky": "SRV",
                    "disco-check": "/ping",
                },
            ),
            entry(
                "b",
                {"disco-maxconn": "20", "disco-balance": "source", "disco-sticky": "SRV", "disco-check": "/ping"},
                ["backup"],
                port=8081,
            ),
        ],
    ).service
    text = render(web)
    assert "    server a 10.0.0.1:8080 check inter 1s fall 2 rise 1 weight 3 maxconn 20\n" in text
    assert "    server b 10.0.0.1:8081 check inter 1s fall 2 rise 1 backup maxconn 20\n" in text
    assert "balance source\n    hash-type consistent\n" in text and "option httpchk GET /ping" in text
    assert "cookie SRV insert indirect nocache dynamic" in text
    assert f"dynamic-cookie-key {web.cookie_key}" in text and len(web.cookie_key) == 32


@pytest.mark.parametrize(
    "check, server_tail, httpchk",
    [
        ("tcp", " check inter 1s fall 2 rise 1", False),
        ("none", "", False),
        ("/up", " check inter 1s fall 2 rise 1", True),
    ],
)
def test_check_kinds(check, server_tail, httpchk):
    text = render(convert("web", [entry("a", {"disco-check": check})]).service)
    assert f"    server a 10.0.0.1:8080{server_tail}\n" in text
    assert ("option httpchk" in text) == httpchk


def test_a_weight_change_is_planned_as_a_runtime_weight_change():
    before = render(convert("web", [entry("a", {"disco-weight": "3"}), entry("b", port=8081)]).service)
    after = render(
        convert("web", [entry("a", {"disco-weight": "1"}), entry("b", {"disco-weight": "0"}, port=8081)]).service
    )
    plan = Planner().plan(before, after)
    assert plan.live and {(type(op), op.option) for op in plan.ops if isinstance(op, Set)} == {(Set, "weight")}
    assert sorted((op.server.name, op.server.weight) for op in plan.ops) == [("a", "1"), ("b", "0")]


def test_the_cookie_key_is_stable_across_renders_and_differs_per_service():
    a1, a2 = convert("a", [entry("x")]).service, convert("a", [entry("y")]).service
    assert a1.cookie_key == a2.cookie_key != convert("b", [entry("x")]).service.cookie_key


def test_tcp_routes_have_no_idle_timeout_unless_asked():
    db = [entry("db-1", tags=["urlprefix-:5432 proto=tcp"])]
    assert convert("db", db).service.settings.idle_timeout == ""
    text = render(convert("db", db).service, tcp_ports="5432")
    assert "    timeout client 24d\n    option clitcpka\n" in text  # the frontend tcp-5432
    assert "    mode tcp\n    timeout server 24d\n    option srvtcpka\n" in text  # the backend
    assert "timeout client 30s" in text  # HTTP keeps its own
    text = render(convert("db", db).service, tcp_ports="5432", tcp_idle_timeout="1h")  # the operator's default
    assert "timeout client 1h\n" in text and "timeout server 1h\n" in text
    asks = [entry("db-1", {"disco-idle-timeout": "90s"}, tags=["urlprefix-:5432 proto=tcp"])]
    text = render(convert("db", asks).service, tcp_ports="5432", tcp_idle_timeout="1h")  # the service's own
    assert "timeout client 90s\n" in text and "timeout server 90s\n" in text
    none = [entry("db-1", {"disco-idle-timeout": "none"}, tags=["urlprefix-:5432 proto=tcp"])]
    text = render(convert("db", none).service, tcp_ports="5432", tcp_idle_timeout="1h")
    assert "timeout client 24d\n" in text and "timeout server 24d\n" in text


def test_idle_timeout_on_an_http_service_is_ignored_with_one_line():
    conv = convert("web", [entry("a", {"disco-idle-timeout": "5m"})])
    assert conv.service.settings.idle_timeout == ""
    assert conv.skipped == ("web: disco-idle-timeout applies to TCP routes (proto=tcp) only; ignored",)
