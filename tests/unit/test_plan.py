"""Diffing rendered configs into runtime operations (pure)."""

from discovery.haproxy.plan import Add, Remove, Set, parse
from discovery.haproxy.planner import Planner


def plan(old, new):
    """A fresh Planner each time, as `disco plan` uses it."""
    return Planner().plan(old, new)


BASE = """global
    maxconn 100

frontend http
    bind *:80
    default_backend web

backend web
    balance roundrobin
{servers}
backend api
    balance roundrobin
    server api-1 10.0.1.1:9000 check
"""


def cfg(*servers: str) -> str:
    return BASE.format(servers="\n".join(f"    server {s}" for s in servers))


def test_no_running_config_means_reload():
    assert plan(None, cfg()).reload_reason == "no running config"


def test_added_and_removed_servers_become_ops():
    p = plan(cfg("a 10.0.0.1:80 check", "b 10.0.0.2:80 check"), cfg("b 10.0.0.2:80 check", "c [fd00::3]:81 check"))
    assert p.live
    kinds = sorted((type(op).__name__, getattr(op, "name", None) or op.server.name) for op in p.ops)
    assert kinds == [("Add", "c"), ("Remove", "a")]
    add = next(op for op in p.ops if isinstance(op, Add))
    assert (add.server.address, add.server.port, add.server.options, add.server.addr_port) == (
        "fd00::3",
        81,
        ("check",),
        "[fd00::3]:81",
    )


def test_address_and_weight_changes_are_live():
    p = plan(cfg("a 10.0.0.1:80 check weight 10"), cfg("a 10.0.0.9:8080 check weight 20"))
    assert [(type(op), op.option) for op in p.ops if isinstance(op, Set)] == [(Set, "address"), (Set, "weight")]


def test_order_of_server_lines_is_no_change():
    assert plan(cfg("a 10.0.0.1:80", "b 10.0.0.2:80"), cfg("b 10.0.0.2:80", "a 10.0.0.1:80")).ops == ()


def test_anything_beyond_server_lines_needs_a_reload():
    old = cfg("a 10.0.0.1:80")
    assert "beyond server lines" in plan(old, old.replace("maxconn 100", "maxconn 200")).reload_reason
    assert "beyond server lines" in plan(old, old + "\nbackend new\n").reload_reason


def test_changed_server_options_need_a_reload():
    assert "options of server web/a" in plan(cfg("a 10.0.0.1:80 check"), cfg("a 10.0.0.1:80")).reload_reason


def test_unreadable_server_lines_need_a_reload():
    assert plan(cfg("a"), cfg("a 10.0.0.1:80")).reload_reason is not None
    assert parse(cfg("a 10.0.0.1:80", "a 10.0.0.2:80")) is None


def test_removal_names_backend_and_server():
    assert plan(cfg("a 10.0.0.1:80"), cfg()).ops == (Remove("web", "a"),)


def test_planner_reuses_its_last_parse_and_stays_correct():
    """The watcher's Planner plans from the config it planned to last: chained plans must equal fresh ones."""
    planner = Planner()
    a, b, c = cfg("a 10.0.0.1:80"), cfg("a 10.0.0.1:80", "b 10.0.0.2:80"), cfg("b 10.0.0.2:81")
    assert planner.plan(a, b) == plan(a, b)
    assert planner.parsed(b) is planner.parsed(b)  # reused, not parsed again
    assert planner.plan(b, c) == plan(b, c)
    assert planner.plan(c, a) == plan(c, a)


def test_delta_keeps_the_skeleton_and_only_added_or_changed_servers():
    from discovery.haproxy.plan import delta

    old = cfg("a 10.0.0.1:80 check", "b 10.0.0.2:80 check", "c 10.0.0.3:80 check weight 10")
    new = cfg("a 10.0.0.1:80 check", "c 10.0.0.3:80 check weight 20", "d 10.0.0.4:80 check")
    ops = plan(old, new).ops
    checked = delta(new, ops)
    assert "server a " not in checked and "server b " not in checked  # unchanged, removed
    assert "server c 10.0.0.3:80 check weight 20" in checked and "server d 10.0.0.4:80 check" in checked
    assert parse(checked).skeleton == parse(new).skeleton
