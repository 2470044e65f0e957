"""The blocking-query loop of one service, against a scripted catalog (pure logic: no Consul here)."""

from __future__ import annotations

import asyncio
import time

import pytest

from discovery.consul.aio_client import ConnectionReset, Reply
from discovery.consul.answers import AnswerRule
from discovery.consul.resets import Outcome, Probe, Verdict
from discovery.consul.service_loop import RESETS_MAX, ServiceFollow, ServiceLoop, not_judged
from discovery.consul.watch import ServiceView, Update, WatchTiming, next_index
from discovery.errors import AccessDenied, CatalogUnavailable, ConnectionLimit


def entry(sid, port=8080):
    return {
        "Node": {"Node": "n1", "Address": "10.0.0.1"},
        "Service": {"ID": sid, "Address": "10.0.0.1", "Port": port, "Tags": [], "Meta": {}},
        "Checks": [],
    }


class End(Exception):
    """The script ran out: ends the follow (a cancelled task in real life)."""


class ScriptedCatalog:
    """Answers from a list; each item is (index, entries) or an exception. Ends the follow at the end."""

    def __init__(self, script):
        self.script = list(script)
        self.calls: list[int] = []

    async def fetch(self, index, wait):
        self.calls.append(index)
        if not self.script:
            raise End()
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return Reply(*item)


FAST = WatchTiming(wait=1, min_interval=0.0, backoff_min=0.001, backoff_max=0.002, denied_retry=0.001)


def run(script, timing=FAST, judge=not_judged):
    catalog = ScriptedCatalog(script)
    updates: list[Update] = []
    follow = ServiceFollow(ServiceView("web", updates.append), catalog.fetch, timing=timing, judge=judge)
    with pytest.raises(End):
        asyncio.run(follow.run())
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
    catalog = ScriptedCatalog([(i, [entry("a")]) for i in range(1, 1000)])
    follow = ServiceFollow(
        ServiceView("web", lambda u: None), catalog.fetch, timing=WatchTiming(wait=1, min_interval=0.05)
    )

    async def for_half_a_second():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(follow.run(), 0.5)

    started = time.monotonic()
    asyncio.run(for_half_a_second())
    elapsed = time.monotonic() - started
    assert len(catalog.calls) <= elapsed / 0.05 + 2  # one at once, then one per min_interval at most


def judged(limit):
    async def judge():
        return Verdict(limit, "the agent resets a fresh connection too" if limit else "the agent does not answer")

    return judge


def test_resets_in_a_row_judged_the_connection_limit_fail_the_follow_clearly():
    """An agent past its connection limit resets with no answer: after a few, judged so, the follow fails clearly."""
    updates = []
    script = [(3, [entry("a")])] + [ConnectionReset("reset")] * RESETS_MAX
    catalog = ScriptedCatalog(script)
    follow = ServiceFollow(ServiceView("web", updates.append), catalog.fetch, timing=FAST, judge=judged(True))
    with pytest.raises(ConnectionLimit, match="http_max_conns_per_client"):
        asyncio.run(follow.run())
    assert len(catalog.calls) == 1 + RESETS_MAX


def test_resets_in_a_row_judged_an_outage_are_retried_until_the_agent_answers(caplog):
    """An agent restarting behind a proxy: reset after reset, then it answers and the follow catches up."""
    script = [(3, [entry("a")])] + [ConnectionReset("reset")] * (RESETS_MAX * 3) + [(9, [entry("b")])]
    _, updates = run(script, judge=judged(False))
    assert [u.service.instances[0].id for u in updates] == ["a", "b"]


def test_a_reset_between_answers_is_retried():
    script = [(3, [entry("a")]), ConnectionReset("reset"), ConnectionReset("reset"), (4, [entry("b")])]
    script += [ConnectionReset("reset")] * (RESETS_MAX - 1) + [(5, [entry("c")])]
    _, updates = run(script)
    assert [u.service.instances[0].id for u in updates] == ["a", "b", "c"]


class Reader:
    """A reader whose long polls block until cancelled, counting those open at once."""

    def __init__(self):
        self.open = 0
        self.most = 0
        self.closed = False

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.closed = True

    async def health_service(self, service, *, tag, index, wait):
        if not index:
            return Reply(1, [entry(service)])
        self.open += 1
        self.most = max(self.most, self.open)
        try:
            await asyncio.sleep(3600)
        finally:
            self.open -= 1
        raise AssertionError("not cancelled")


def test_the_loop_runs_one_task_per_service_and_stop_cancels_them_all():
    import threading

    reader, updates = Reader(), []
    loop = ServiceLoop(lambda: reader, [f"s{i}" for i in range(200)], updates.append, timing=FAST)
    thread = threading.Thread(target=loop.run)
    thread.start()
    deadline = time.monotonic() + 20
    while reader.most < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reader.most == 200 and len(updates) == 200
    loop.stop()
    thread.join(10)
    assert not thread.is_alive() and reader.open == 0 and reader.closed


def test_stop_before_the_loop_starts_is_not_lost():
    loop = ServiceLoop(Reader, ["web"], lambda u: None, timing=FAST)
    loop.stop()
    loop.run()  # returns at once


def test_cancelling_ends_a_backoff_at_once():
    async def down(index, wait):
        raise CatalogUnavailable("down")

    follow = ServiceFollow(ServiceView("web", lambda u: None), down, timing=WatchTiming(backoff_min=10, backoff_max=60))

    async def cancelled_soon():
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(follow.run(), 0.2)

    started = time.monotonic()
    asyncio.run(cancelled_soon())
    assert time.monotonic() - started < 2


def test_first_reads_go_a_bounded_number_at_a_time():
    """Thousands of first reads at once would each be a cache miss the agent sends to the servers together."""
    import threading

    from discovery.consul.service_loop import READS_AT_ONCE

    class SlowFirstReads(Reader):
        def __init__(self):
            super().__init__()
            self.first, self.most_first = 0, 0

        async def health_service(self, service, *, tag, index, wait):
            if not index:
                self.first += 1
                self.most_first = max(self.most_first, self.first)
                await asyncio.sleep(0.01)
                self.first -= 1
            return await super().health_service(service, tag=tag, index=index, wait=wait)

    reader, updates = SlowFirstReads(), []
    loop = ServiceLoop(lambda: reader, [f"s{i}" for i in range(READS_AT_ONCE * 3)], updates.append, timing=FAST)
    thread = threading.Thread(target=loop.run)
    thread.start()
    deadline = time.monotonic() + 30
    while len(updates) < READS_AT_ONCE * 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop()
    thread.join(10)
    assert len(updates) == READS_AT_ONCE * 3
    assert reader.most_first == READS_AT_ONCE


def follow_thread(script):
    """The thread loop (Follow) over ``script``; the answers it read."""
    import threading

    from discovery.consul.watch import Follow

    stop = threading.Event()
    script = list(script)
    seen: list[tuple[int, object]] = []

    def fetch(index: int, wait: float) -> tuple[int, object]:
        if not script:
            stop.set()
            raise CatalogUnavailable("done")
        step = script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step  # type: ignore[no-any-return]

    def on_answer(index: int, body: object) -> bool:
        seen.append((index, body))
        return True

    Follow("health.service(web|passing|dc=dc2)", fetch, on_answer, stop, FAST).run()
    return seen


def follow_loop(script):
    """The event-loop follow (ServiceFollow) over ``script`` of (index, ids); the answers it read."""
    seen: list[tuple[int, object]] = []

    class Seen(ServiceView):
        def answer(self, index, entries, answered_at):
            seen.append((index, [e["Service"]["ID"] for e in entries]))
            return super().answer(index, entries, answered_at)

    scripted = [step if isinstance(step, Exception) else (step[0], [entry(i) for i in step[1]]) for step in script]
    catalog = ScriptedCatalog(scripted)
    with pytest.raises(End):
        asyncio.run(ServiceFollow(Seen("web", lambda u: None), catalog.fetch, timing=FAST).run())
    return seen


@pytest.mark.parametrize("follow", [follow_thread, follow_loop], ids=["Follow", "ServiceFollow"])
def test_an_answer_at_the_same_index_after_a_failure_is_read(follow) -> None:
    """A Consul restored or rebuilt may come back at the index last seen with other content (a
    failover datacenter's server restarted empty): after a failure, the answer is read, not skipped.
    Both blocking-query loops, by one rule (discovery/consul/answers.py)."""
    script = [(12, ["r1"]), (12, ["r1"]), CatalogUnavailable("down"), (12, []), (12, [])]
    assert follow(script) == [(12, ["r1"]), (12, [])]


def test_the_answer_rule():
    rule = AnswerRule()
    assert rule.take(5) and rule.index == 5  # the first answer is read
    assert not rule.take(5)  # the wait ran out
    assert rule.take(7) and rule.index == 7
    rule.failed()
    assert rule.take(7)  # the first answer after a failure, whatever its index
    assert not rule.take(7)
    assert rule.take(3) and rule.index == 0  # backwards: from scratch
    assert rule.take(0) and rule.index == 1  # never 0


class ResettingReader(Reader):
    """Long polls of the services in ``resets`` are reset at once while ``down``; a probe of the agent says
    ``probe``.  The others block (held by the agent) until cancelled."""

    def __init__(self, resets, probe):
        super().__init__()
        self.resets, self.probe_says, self.probes, self.down = set(resets), probe, 0, True

    async def health_service(self, service, *, tag, index, wait):
        if index == 1 and service in self.resets:
            if self.down:
                raise ConnectionReset("closed the connection with no answer")
            return Reply(2, [entry(service), entry(service + "-2")])  # then held, as the others
        return await super().health_service(service, tag=tag, index=index, wait=wait)

    async def probe(self):
        self.probes += 1
        return self.probe_says


def test_the_loop_stops_with_the_limit_when_new_connections_reset_while_others_are_held():
    reader = ResettingReader({"s2"}, Probe(Outcome.RESET))
    loop = ServiceLoop(lambda: reader, ["s0", "s1", "s2"], lambda u: None, timing=FAST)
    with pytest.raises(ConnectionLimit, match="with 2 long polls of ours held open"):
        loop.run()  # within HELD_FOR and a few backoffs
    assert reader.probes >= 1


def test_the_loop_retries_resets_with_nothing_held_as_an_outage_and_catches_up(caplog):
    """Every long poll reset and a fresh connection reset too, nothing held: an agent down behind a proxy."""
    import threading

    reader, updates = ResettingReader({"s0", "s1"}, Probe(Outcome.RESET)), []
    paced = WatchTiming(wait=1, min_interval=0.0, backoff_min=0.05, backoff_max=0.1)
    loop = ServiceLoop(lambda: reader, ["s0", "s1"], updates.append, timing=paced)
    failed: list[BaseException] = []

    def run():
        try:
            loop.run()
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 20
    while reader.probes < 2 and time.monotonic() < deadline:  # judged an outage twice (a verdict stands 1 s)
        time.sleep(0.01)
    reader.down = False  # the agent is back
    while len(updates) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop()
    thread.join(10)
    assert not failed and reader.probes >= 2
    assert sorted(len(u.service.instances) for u in updates) == [1, 1, 2, 2]
    assert "an outage, not the connection limit: retrying with backoff" in caplog.text


def test_an_outage_of_more_than_a_thousand_retries_is_still_retried():
    """The backoff's exponent grew without bound: retry 1025 overflowed a float and ended the follow
    (about 40 minutes into a Consul outage at the default 5 s ceiling)."""
    _, updates = run([(3, [entry("a")])] + [CatalogUnavailable("down")] * 1100 + [(9, [entry("b")])])
    assert [u.service.instances[0].id for u in updates] == ["a", "b"]
