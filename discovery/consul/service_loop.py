"""One long poll per service, all on one asyncio event loop in one thread.

A thread per blocking query does not go far (a stack and a scheduler slot each), and a
long poll is mostly waiting: one event loop holds thousands.  The loop is owned like a
thread: :meth:`ServiceLoop.run` is the target of one of the watcher's worker threads; it
opens one :class:`~discovery.consul.aio_client.AsyncConsul` session for its whole life and
runs a task per service under one ``asyncio.TaskGroup``; :meth:`ServiceLoop.stop` (from any
thread) cancels the group.  Updates cross to the pipeline through ``on_update`` (the
watcher's inbox), never by touching pipeline state from the loop.

Each task follows Consul's rules for blocking queries as :class:`~discovery.consul.watch.Follow`
does (the same :class:`~discovery.consul.answers.AnswerRule` for which answers to read and the
next index, at most one query per ``min_interval``, backoff with jitter, a refused token
reported once), and converts answers with :class:`~discovery.consul.watch.ServiceView`.
A connection reset with no answer, again and again, may be the agent's connection limit
(:mod:`~discovery.consul.fit`), which retrying forever would leave unwatched, or an agent that
restarts (or is down behind a proxy), which is an outage to retry like any other.  After
:data:`RESETS_MAX` in a row the loop gathers evidence (a probe of the agent on a fresh connection,
the long polls it holds) and :func:`~discovery.consul.resets.judge` decides: the limit fails the
loop with ConnectionLimit, which stops the watcher with a clear error; an outage is logged,
reported and retried with backoff, and judged again if the resets go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from ..errors import CatalogError, ConnectionLimit
from .aio_client import ConnectionReset, Reply
from .answers import AnswerRule
from .resets import HELD_FOR, Evidence, Probe, Verdict, judge
from .watch import (
    HEALTH_SERVICE,
    ConsulRequest,
    Report,
    Retry,
    ServiceView,
    Update,
    WatchTiming,
    no_report,
)

log = logging.getLogger(__name__)

DEFAULT_TIMING = WatchTiming()
#: Resets in a row, with no answer between them, after which the loop judges what they mean.
RESETS_MAX = 3
#: A verdict stands this long: the follows that keep resetting share one probe of the agent.
VERDICT_FOR = 1.0

#: Reads that answer at once (the first of each service, and after an index reset) in flight together.
#: All at once, 10,000 first reads were each a cache miss the agent sent to the server together:
#: half of them timed out (10 s) and were asked again.
READS_AT_ONCE = 128

Fetch = Callable[[int, float], Awaitable[Reply]]
Judge = Callable[[], Awaitable[Verdict]]


async def not_judged() -> Verdict:
    """A follow on its own, with no agent to probe: resets are retried as an outage."""
    return Verdict(False, "not judged")


class Reader(Protocol):
    """What the loop needs of :class:`~discovery.consul.aio_client.AsyncConsul`."""

    async def __aenter__(self) -> Reader: ...

    async def __aexit__(self, *exc: Any) -> None: ...

    async def health_service(self, service: str, *, tag: str | None, index: int, wait: float) -> Reply: ...

    async def probe(self) -> Probe: ...


class ServiceFollow:
    """One service's long poll, followed until its task is cancelled."""

    def __init__(
        self,
        view: ServiceView,
        fetch: Fetch,
        *,
        timing: WatchTiming = DEFAULT_TIMING,
        clock: Callable[[], float] = time.monotonic,
        report: Report = no_report,
        judge: Judge = not_judged,
    ) -> None:
        self.view = view
        self.fetch = fetch
        self.judge = judge
        self.timing = timing
        self.clock = clock
        self.report = report
        self.retry = Retry(view.identity, threading.Event(), timing, HEALTH_SERVICE, report)
        self.rule = AnswerRule()
        self._resets = 0

    async def _read(self, index: int, wait: float) -> Reply:
        try:
            reply = await self.fetch(index, wait)
        except CatalogError as exc:
            self.rule.failed()
            if isinstance(exc, ConnectionReset):
                await self._reset(exc)
            raise
        self._resets = 0
        return reply

    async def _reset(self, exc: ConnectionReset) -> None:
        """Count a reset; after RESETS_MAX in a row, raise ConnectionLimit if they are judged the limit."""
        self._resets += 1
        if self._resets < RESETS_MAX:
            return
        verdict = await self.judge()
        if verdict.limit:
            raise ConnectionLimit(
                f"{self.view.identity}: {exc}, {self._resets} times in a row: the agent refuses more "
                f"connections from this address ({verdict.reason}); raise "
                "limits.http_max_conns_per_client in its config, or use --watch-mode catalog"
            ) from exc

    async def run(self) -> None:
        """Loop until cancelled; raises only ConnectionLimit (and bugs)."""
        last_start = float("-inf")
        while True:
            pause = last_start + self.timing.min_interval - self.clock()
            if pause > 0:
                await asyncio.sleep(pause)
            last_start = self.clock()
            reply = await self.retry.call_async(self._read, self.rule.index, self.timing.wait)
            answered_at = self.clock()
            if not self.rule.take(reply.index):
                self.report(ConsulRequest(HEALTH_SERVICE, "unchanged", reply.cache, reply.backend))
                del reply  # not held through the next long poll: every service's last answer is the catalog
                continue  # the wait elapsed with no change
            changed = self.view.answer(reply.index, reply.entries, answered_at)
            self.report(
                ConsulRequest(HEALTH_SERVICE, "changed" if changed else "unchanged", reply.cache, reply.backend)
            )
            del reply  # (its decoded JSON: 150 MB at 50,000 instances)


class ServiceLoop:
    """Every service's long poll on one event loop; :meth:`run` is a thread's target."""

    def __init__(
        self,
        open_reader: Callable[[], Reader],
        services: Iterable[str],
        on_update: Callable[[Update], None],
        *,
        tag: str | None = None,
        passing: bool = True,
        timing: WatchTiming = DEFAULT_TIMING,
        clock: Callable[[], float] = time.monotonic,
        report: Report = no_report,
    ) -> None:
        self.open_reader = open_reader
        self.services = tuple(services)
        self.on_update = on_update
        self.tag = tag
        self.passing = passing
        self.timing = timing
        self.clock = clock
        self.report = report
        self._lock = threading.Lock()
        #: Each service's long poll in flight (index > 0): when it was sent (``clock``).
        self._polls: dict[str, float] = {}
        self._verdict: tuple[float, Verdict] | None = None
        self._stopped = False
        self._running: tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = None

    def stop(self) -> None:
        """Cancel every long poll and end :meth:`run`; safe from any thread, before or after it starts."""
        with self._lock:
            self._stopped = True
            running = self._running
        if running is not None:
            loop, task = running
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(task.cancel)

    @property
    def stopping(self) -> bool:
        with self._lock:
            return self._stopped

    def run(self) -> None:
        """Follow every service until :meth:`stop`; raises ConnectionLimit when the agent refuses us."""
        asyncio.run(self._main())

    async def _main(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        with self._lock:
            if self._stopped:
                return
            self._running = (asyncio.get_running_loop(), task)
        try:
            async with self.open_reader() as reader, asyncio.TaskGroup() as group:
                reads, judging = asyncio.Semaphore(READS_AT_ONCE), asyncio.Lock()
                for name in self.services:
                    group.create_task(self._follow(reader, name, reads, judging).run(), name=f"watch-{name}")
                if not self.services:
                    await asyncio.Event().wait()  # nothing to follow: wait to be stopped
        except asyncio.CancelledError:
            if self.stopping:
                return
            raise
        except BaseExceptionGroup as failed:
            first = failed.exceptions[0]
            raise first from first.__cause__
        finally:
            with self._lock:
                self._running = None

    def _follow(self, reader: Reader, name: str, reads: asyncio.Semaphore, judging: asyncio.Lock) -> ServiceFollow:
        view = ServiceView(name, self.on_update, tag=self.tag, passing=self.passing)

        async def fetch(index: int, wait: float) -> Reply:
            if index:
                self._polls[name] = self.clock()
                try:
                    return await reader.health_service(name, tag=self.tag, index=index, wait=wait)
                finally:
                    del self._polls[name]
            async with reads:  # a read that answers at once: a bounded number at a time (READS_AT_ONCE)
                return await reader.health_service(name, tag=self.tag, index=index, wait=wait)

        async def judge_resets() -> Verdict:
            async with judging:  # one probe at a time; its verdict stands VERDICT_FOR for every follow
                return await self._judge(reader)

        return ServiceFollow(view, fetch, timing=self.timing, clock=self.clock, report=self.report, judge=judge_resets)

    async def _judge(self, reader: Reader) -> Verdict:
        """What the resets mean (:func:`~discovery.consul.resets.judge`): probe the agent, count the long polls
        it holds; an outage is logged here (a limit is the follow's error)."""
        if self._verdict is not None and self.clock() - self._verdict[0] < VERDICT_FOR:
            return self._verdict[1]
        probe = await reader.probe()
        now = self.clock()
        held = sum(1 for sent in self._polls.values() if now - sent >= HELD_FOR)
        verdict = judge(Evidence(probe, held, len(self.services)))
        self._verdict = (now, verdict)
        if not verdict.limit:
            log.warning(
                "connections to Consul reset with no answer, %d times in a row or more: %s; an outage, not the "
                "connection limit: retrying with backoff",
                RESETS_MAX,
                verdict.reason,
            )
        return verdict
