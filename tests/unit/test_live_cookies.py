"""Sticky backends: a server added live gets its dynamic cookie (the key is re-sent), and the read-back checks it."""

from __future__ import annotations

import pytest

from discovery.errors import LiveUpdateFailed
from discovery.haproxy.plan import parse
from discovery.haproxy.planner import Planner
from discovery.haproxy.runtime import ServerState
from discovery.pipeline.live import LiveUpdater

CONFIG = """backend web
    balance roundrobin
    cookie SRV insert indirect nocache dynamic
    dynamic-cookie-key 0123abcd
{servers}
backend plain
    balance roundrobin
    server p1 10.0.0.9:80 check
"""


class FakeAPI:
    """Records commands; a server gets a cookie only once the key is re-sent after it was added."""

    def __init__(self, servers):
        self.commands: list[str] = []
        self.state = {b: dict(s) for b, s in servers.items()}
        self.cookie: dict[str, str] = {}

    def add_server(self, backend, name, addr_port, options):
        self.commands.append(f"add server {backend}/{name}")
        address, port = addr_port.rsplit(":", 1)
        self.state[backend][name] = ServerState(name, address, int(port), 2, 0)

    def set_weight(self, backend, name, weight):
        self.commands.append(f"set weight {backend}/{name}")

    def refresh_dynamic_cookies(self, backend, key):
        self.commands.append(f"refresh cookies {backend} {key}")
        self.cookie.update(dict.fromkeys(self.state[backend], "c"))

    def servers(self, backend, full=False, only=None):
        return self.state[backend]

    def cookies(self, backend):
        return {n: self.cookie.get(n, "") for n in self.state[backend]}


def text(*servers):
    return CONFIG.format(servers="\n".join(f"    server {s} check" for s in servers))


def test_the_key_is_re_sent_after_an_add_on_a_sticky_backend_only():
    old, new = text("w1 10.0.0.1:80"), text("w1 10.0.0.1:80", "w2 10.0.0.2:80")
    assert parse(new).cookie_keys == {"web": "0123abcd"}
    api = FakeAPI(
        {
            "web": {"w1": ServerState("w1", "10.0.0.1", 80, 2, 0)},
            "plain": {"p1": ServerState("p1", "10.0.0.9", 80, 2, 0)},
        }
    )
    api.cookie["w1"] = "c"
    plan = Planner().plan(old, new)
    LiveUpdater(api).execute(plan.ops, parse(new))  # type: ignore[arg-type]
    assert api.commands == ["add server web/w2", "refresh cookies web 0123abcd"]


def test_a_server_left_without_a_cookie_is_drift():
    new = text("w1 10.0.0.1:80")
    api = FakeAPI({"web": {"w1": ServerState("w1", "10.0.0.1", 80, 2, 0)}, "plain": {}})
    with pytest.raises(LiveUpdateFailed, match="no cookie for w1"):
        LiveUpdater(api).verify(parse(new), {"web"})  # type: ignore[arg-type]
