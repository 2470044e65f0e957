"""The overrides watch: one blocking query, a change handed on once, a malformed document logged once."""

from __future__ import annotations

import json
import logging
import threading

from discovery.consul.overrides_watch import OverridesUpdate, OverridesWatch
from discovery.consul.watch import WatchTiming
from discovery.haproxy.plan import parse
from discovery.haproxy.runtime import ServerState
from discovery.observe.compare import compare
from discovery.observe.status import backend_rows, backend_status


class FakeKV:
    """Answers from a script, then stops the watch."""

    def __init__(self, answers, stop):
        self.answers = list(answers)
        self.stop = stop
        self.asked = []

    def kv_prefix(self, prefix, *, index, wait):
        self.asked.append((prefix, index))
        if len(self.answers) == 1:
            self.stop.set()
        return self.answers.pop(0)


def test_changes_are_handed_on_once_and_a_malformed_document_is_logged_once(caplog):
    good = ("disco/overrides/web", json.dumps({"drain": ["w2"]}).encode())
    bad = ("disco/overrides/api", b"{")
    stop = threading.Event()
    kv = FakeKV([(5, [good]), (6, [good]), (7, [good, bad]), (8, [good, bad]), (9, [])], stop)
    got: list[OverridesUpdate] = []
    watch = OverridesWatch(kv, "disco/overrides/", got.append, stop, timing=WatchTiming(min_interval=0))
    with caplog.at_level(logging.INFO):
        watch.run()
    assert [(u.index, len(u.overrides.items), len(u.overrides.malformed)) for u in got] == [
        (5, 1, 0),
        (7, 1, 1),
        (9, 0, 0),
    ]
    assert [i for _, i in kv.asked] == [0, 5, 6, 7, 8]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("override disco/overrides/api ignored: not JSON (")


def test_a_server_an_override_drains_is_not_drift_and_the_row_says_so():
    parsed = parse("backend web\n    server w1 10.0.0.1:80\n    server w2 10.0.0.2:80\n")
    running = {
        "w1": ServerState("w1", "10.0.0.1", 80, 2, 0x08),
        "w2": ServerState("w2", "10.0.0.2", 80, 2, 0),
    }

    def rows(admin):
        compared = compare(parsed, parsed, {"web": running}, ["web"], admin=admin)  # the one comparison
        return {r.name: r for r in backend_rows(compared.backends[0]).servers}

    drained = rows({("web", "w1"): "drain"})
    assert drained["w1"].drift is None and drained["w1"].override == "drain" and drained["w1"].state == "drain"
    disabled = rows({("web", "w2"): "maint"})
    assert disabled["w1"].drift == "draining in HAProxy while the file lists it"
    assert disabled["w2"].drift == "ready in HAProxy, an operator override asks for maint"


def test_the_address_only_view_goes_through_the_same_comparison():
    parsed = parse("backend web\n    server w1 10.0.0.1:80 check\n    server w2 10.0.0.2:80 check\n")
    running = {"w1": ServerState("w1", "10.0.0.1", 80, 2, 0x08), "w2": ServerState("w2", "10.0.0.2", 80, 2, 0)}
    consul = {"w1": "10.0.0.1:80", "w3": "[fd00::3]:80"}
    rows = {r.name: r for r in backend_status("web", consul, parsed, running, admin={"w1": "drain"}).servers}
    assert rows["w1"].drift is None and rows["w1"].override == "drain" and rows["w1"].pending is None
    assert rows["w2"].pending == "Consul no longer routes it"
    assert (
        rows["w3"].pending == "Consul routes it, the file does not list it yet" and rows["w3"].consul == "[fd00::3]:80"
    )
