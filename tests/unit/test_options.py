"""Server options declared once (discovery.haproxy.options): parse, render, plan, read-back agree."""

from __future__ import annotations

from discovery.haproxy import options
from discovery.haproxy.plan import Add, Remove, Set, parse
from discovery.haproxy.planner import Planner
from discovery.haproxy.runtime import ServerState

BASE = """backend web
    balance roundrobin
{servers}
"""


def cfg(*servers: str) -> str:
    return BASE.format(servers="\n".join(f"    server {s}" for s in servers))


def test_a_line_parses_into_its_options_and_renders_back_in_the_table_order():
    slot = options.parse("10.0.0.1", 80, ("check", "inter", "1s", "fall", "2", "rise", "1", "weight", "5", "backup"))
    assert (slot.weight, slot.backup, slot.maxconn, slot.check) == (
        5,
        True,
        0,
        ("check", "inter", "1s", "fall", "2", "rise", "1"),
    )
    assert options.words(slot) == ("check", "inter", "1s", "fall", "2", "rise", "1", "weight", "5", "backup")
    odd = options.parse("10.0.0.1", 80, ("ssl", "verify", "none", "maxconn", "x"))
    assert odd.other == ("ssl", "verify", "none", "maxconn", "x") and odd.maxconn == 0


def test_the_template_filter_writes_what_the_table_parses():
    text = options.render_words({"address": "10.0.0.1", "port": 80, "weight": 3, "backup": True}, {"maxconn": 7}, "2s")
    assert text == " check inter 2s fall 2 rise 1 weight 3 backup maxconn 7"
    slot = options.parse("10.0.0.1", 80, tuple(text.split()))
    assert (slot.weight, slot.backup, slot.maxconn) == (3, True, 7)
    assert options.render_words({"address": "::1", "port": 80, "weight": None}, {}, None) == ""


def test_options_the_runtime_api_sets_are_live_the_others_reload():
    p = Planner().plan(cfg("a 10.0.0.1:80 check maxconn 5"), cfg("a 10.0.0.1:80 check maxconn 9 weight 4"))
    assert p.live and {op.option for op in p.ops if isinstance(op, Set)} == {"maxconn", "weight"}
    for before, after, what in (
        ("a 10.0.0.1:80 check", "a 10.0.0.1:80 check backup", "backup"),
        ("a 10.0.0.1:80 check", "a 10.0.0.1:80", "check"),
        ("a 10.0.0.1:80 check inter 1s", "a 10.0.0.1:80 check inter 2s", "check"),
        ("a 10.0.0.1:80 ssl", "a 10.0.0.1:80", "other"),
    ):
        reason = Planner().plan(cfg(before), cfg(after)).reload_reason
        assert reason is not None and f"changed: {what}" in reason, (before, after, reason)


def test_a_draining_slot_is_reused_only_when_it_can_carry_the_returning_server():
    old, gone = cfg("a 10.0.0.1:80", "b 10.0.0.2:80 check"), cfg("a 10.0.0.1:80")
    removal = Planner().plan(old, gone).ops
    assert removal == (Remove("web", "b"),) and isinstance(removal[0], Remove) and removal[0].server is not None
    held = {("web", "b"): removal[0].server}
    back = Planner().plan(gone, cfg("a 10.0.0.1:80", "b 10.0.0.3:80 check weight 3"), held)
    assert back.live and [type(op) for op in back.ops] == [Add]
    as_backup = Planner().plan(gone, cfg("a 10.0.0.1:80", "b 10.0.0.2:80 check backup"), held)
    assert as_backup.reload_reason is not None and "backup" in as_backup.reload_reason
    assert Planner().plan(gone, cfg("a 10.0.0.1:80", "b 10.0.0.2:80 check backup")).live  # no slot held: a fresh one


def test_add_server_refuses_a_cookie_so_such_a_server_needs_a_reload():
    reason = Planner().plan(cfg(), cfg("a 10.0.0.1:80 cookie c1")).reload_reason
    assert reason is not None and "cookie" in reason


def test_the_read_back_compares_every_option_haproxy_reports():
    line = parse(cfg("a 10.0.0.1:80 check weight 3 backup maxconn 5"))
    assert line is not None
    slot = line.servers[("web", "a")].slot
    good = ServerState("a", "10.0.0.1", 80, 2, 0, 3, 6, True, 5, None)
    assert options.drift(slot, good) is None
    assert options.drift(slot, ServerState("a", "10.0.0.1", 80, 2, 0, 3, 6, False, 5, None)) == "has backup off, not on"
    assert options.drift(slot, ServerState("a", "10.0.0.1", 80, 2, 0, 3, 0, True, 5, None)) == "has check off, not on"
    assert options.drift(slot, ServerState("a", "10.0.0.1", 80, 2, 0, 3, 6, True, 0, None)) == "has maxconn 0, not 5"
    assert options.drift(slot, ServerState("a", "10.0.0.2", 80, 2, 0, 3)) == "runs at 10.0.0.2:80, not 10.0.0.1:80"
    assert options.drift(slot, ServerState("a", "10.0.0.1", 80, 2, 0, 3)) is None  # not read: not compared
