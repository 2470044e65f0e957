"""Drain and disable overrides at run time: which servers get which state, and which are set ready again."""

from __future__ import annotations

from discovery.errors import LiveUpdateFailed
from discovery.haproxy.plan import parse
from discovery.haproxy.runtime import ServerState
from discovery.pipeline.overrides import AdminStates

CONFIG = parse("backend web\n    server w1 10.0.0.1:80\n    server w2 10.0.0.2:80\n    server w3 10.0.0.3:80\n")
BITS = {"ready": 0, "drain": 0x08, "maint": 0x01}


class FakeAPI:
    def __init__(self, fail=False):
        self.state = {"w1": "ready", "w2": "ready", "w3": "ready", "gone": "ready"}
        self.sent: list[str] = []
        self.fail = fail

    def servers(self, backend, full=False, only=None):
        if self.fail:
            raise LiveUpdateFailed("runtime API: no socket")
        return {n: ServerState(n, "10.0.0.1", 80, 2, BITS[s]) for n, s in self.state.items()}

    def set_state(self, backend, name, state):
        self.sent.append(f"{backend}/{name} {state}")
        self.state[name] = state


def test_states_are_set_once_and_released_servers_go_back_to_ready():
    api = FakeAPI()
    admin = AdminStates(api)  # type: ignore[arg-type]
    wanted = {("web", "w1"): "drain", ("web", "w2"): "maint", ("web", "gone"): "drain"}
    assert admin.apply(wanted, CONFIG, set()) == 2  # "gone" is not in the running config: left alone
    assert api.sent == ["web/w1 drain", "web/w2 maint"]
    assert admin.apply(wanted, CONFIG, set()) == 0  # already so
    api.state["w1"] = "ready"  # a reload: every server starts ready
    assert admin.apply(wanted, CONFIG, set()) == 1 and api.sent[-1] == "web/w1 drain"
    assert admin.apply({("web", "w2"): "maint"}, CONFIG, set()) == 1 and api.sent[-1] == "web/w1 ready"
    assert admin.apply({}, CONFIG, {("web", "w2")}) == 0  # draining for removal: the live path's
    assert api.state["w2"] == "maint"


def test_a_failure_leaves_it_pending_for_the_next_pass():
    api = FakeAPI(fail=True)
    admin = AdminStates(api)  # type: ignore[arg-type]
    admin.apply({("web", "w1"): "drain"}, CONFIG, set())
    assert admin.pending
    api.fail = False
    admin.apply({("web", "w1"): "drain"}, CONFIG, set())
    assert not admin.pending and api.state["w1"] == "drain"
    untouched = FakeAPI()
    assert AdminStates(untouched).apply({}, CONFIG, set()) == 0 and untouched.sent == []  # type: ignore[arg-type]
