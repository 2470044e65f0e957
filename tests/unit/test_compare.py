"""The one comparison (discovery.observe.compare): desired vs file vs HAProxy, pure."""

from __future__ import annotations

from discovery.haproxy.plan import parse
from discovery.haproxy.runtime import ServerState
from discovery.observe.compare import compare

BASE = """frontend http
    bind *:{port}
backend web
    balance roundrobin
{servers}
"""


def cfg(*servers: str, port: int = 80):
    parsed = parse(BASE.format(port=port, servers="\n".join(f"    server {s}" for s in servers)))
    assert parsed is not None
    return parsed


def ready(name: str, address: str, port: int, weight: int = 1, backup: bool = False) -> ServerState:
    return ServerState(name, address, port, 2, 0, weight, 0, backup, 0, None)


def test_every_option_of_a_line_counts_as_pending():
    result = compare(cfg("a 10.0.0.1:80 weight 5 backup"), cfg("a 10.0.0.1:80"), None, ["web"])
    [row] = result.backends[0].servers
    assert row.pending == "Consul says weight 5 (the file: 1), backup on (the file: off)"
    assert row.drift is None and result.drift is None
    assert result.pending == "web/a: " + row.pending


def test_added_removed_moved_servers_and_the_rest_of_the_config():
    result = compare(
        cfg("a 10.0.0.9:80", "c 10.0.0.3:80", port=81), cfg("a 10.0.0.1:80", "b 10.0.0.2:80"), None, ["web"]
    )
    rows = {r.name: r.pending for r in result.backends[0].servers}
    assert rows == {
        "a": "Consul says 10.0.0.9:80",
        "b": "Consul no longer routes it",
        "c": "Consul routes it, the file does not list it yet",
    }
    assert result.skeleton is not None and "'bind *:80', Consul's config 'bind *:81'" in result.skeleton


def test_drift_covers_what_haproxy_reports_and_a_draining_leftover_is_none():
    file = cfg("a 10.0.0.1:80 backup", "b 10.0.0.2:80")
    running = {
        "web": {
            "a": ready("a", "10.0.0.1", 80, backup=False),
            "b": ready("b", "10.0.0.2", 80, weight=3),
            "old": ServerState("old", "10.0.0.5", 80, 2, 0x08),
        }
    }
    rows = {r.name: r.drift for r in compare(file, file, running, ["web"]).backends[0].servers}
    assert rows == {
        "a": "HAProxy has backup off, the file says on",
        "b": "HAProxy has weight 3, the file says 1",
        "old": None,
    }
    assert compare(file, file, None, ["web"]).drift is None  # HAProxy not asked: no drift claimed
