"""The blocking-query loop, against a scripted catalog (pure logic: no Consul here)."""

from __future__ import annotations

import threading
import time

import pytest

from discovery.consul.watch import ServiceWatch, Update, WatchTiming, next_index
from discovery.errors import AccessDenied, CatalogUnavailable


def entry(sid, port=8080):
    return {
        "Node": {"Node": "n1", "Address": "10.0.0.1"},
        "Service": {"ID": sid, "Address": "10.0.0.1", "Port": port, "Tags": [], "Meta": {}},
        "Checks": [],
    }


class ScriptedCatalog:
    """Answers from a list; each item is (index, entries) or an exception. Stops the watch at the end."""

    def __init__(self, script, stop: threading.Event):
        self.script = list(script)
        self.stop = stop
        self.calls: list[int] = []

    def health_service(self, service, *, tag, index, wait, passing):
        self.calls.append(index)
        if not self.script:
            self.stop.set()
            raise CatalogUnavailable("script ended")
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


FAST = WatchTiming(wait=1, min_interval=0.0, backoff_min=0.001, backoff_max=0.002, denied_retry=0.001)


def run(script, timing=FAST):
    stop = threading.Event()
    catalog = ScriptedCatalog(script, stop)
    updates: list[Update] = []
    ServiceWatch(catalog, "web", updates.append, stop, timing=timing).run()
    return catalog, updates


@pytest.mark.parametrize("previous, received, expected", [(5, 7, 7), (7, 7, 7), (9, 3, 0), (0, 0, 1), (5, 0, 0)])
def test_index_rules(previous, received, expected):
    assert next_index(previous, received) == expected


def test_first_answer_is_always_an_update_even_when_empty():
    _, updates = run([(3, [])])
    assert len(updates) == 1 and updates[0].service.instances == ()


def test_same_body_at_a_new_index_is_not_a_change():
    _, updates = run([(3, [entry("a")]), (4, [entry("a")]), (5, [entry("a"), entry("b")])])
    assert [len(u.service.instances) for u in updates] == [1, 2]


def test_blocking_index_follows_answers():
    catalog, _ = run([(3, [entry("a")]), (4, [entry("a")]), (9, [entry("b")])])
    assert catalog.calls[:3] == [0, 3, 4]


def test_index_going_backwards_restarts_from_zero():
    catalog, updates = run([(10, [entry("a")]), (2, [entry("a")]), (3, [entry("b")])])
    assert catalog.calls[:3] == [0, 10, 0]
    assert [u.service.instances[0].id for u in updates] == ["a", "b"]


def test_zero_index_is_treated_as_one_so_the_loop_blocks():
    catalog, _ = run([(0, [entry("a")]), (0, [entry("a")])])
    assert catalog.calls[:2] == [0, 1]


def test_errors_are_retried_and_do_not_lose_the_index():
    catalog, updates = run(
        [(3, [entry("a")]), CatalogUnavailable("down"), CatalogUnavailable("down"), (5, [entry("b")])]
    )
    assert catalog.calls[:4] == [0, 3, 3, 3]
    assert [u.service.instances[0].id for u in updates] == ["a", "b"]


def test_access_denied_is_logged_once(caplog):
    caplog.set_level("ERROR")
    run([AccessDenied("403"), AccessDenied("403"), AccessDenied("403"), (1, [])])
    assert sum("refused" in r.getMessage() or "403" in r.getMessage() for r in caplog.records) == 1


def test_min_interval_spaces_queries():
    """A catalog that returns at once with a new index must not be hammered."""
    stop = threading.Event()
    answers = [(i, [entry("a")]) for i in range(1, 1000)]
    catalog = ScriptedCatalog(answers, stop)
    timing = WatchTiming(wait=1, min_interval=0.05)
    thread = threading.Thread(target=ServiceWatch(catalog, "web", lambda u: None, stop, timing=timing).run)
    started = time.monotonic()
    thread.start()
    threading.Event().wait(0.5)
    stop.set()
    elapsed = time.monotonic() - started
    thread.join(5)
    assert not thread.is_alive()
    assert len(catalog.calls) <= elapsed / 0.05 + 2  # one at once, then one per min_interval at most


def test_stop_interrupts_backoff_at_once():
    stop = threading.Event()

    class Down:
        def health_service(self, *a, **k):
            raise CatalogUnavailable("down")

    slow = WatchTiming(backoff_min=10, backoff_max=60)
    thread = threading.Thread(target=ServiceWatch(Down(), "web", lambda u: None, stop, timing=slow).run)
    thread.start()
    threading.Event().wait(0.2)
    stop.set()
    thread.join(2)
    assert not thread.is_alive()
