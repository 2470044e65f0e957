"""Follow Consul with blocking queries.

:class:`Follow` is the loop every watch uses.  It follows Consul's rules for
blocking queries (and consul-template's ``watch/view.go``): which answers to
read and the next index are :class:`~discovery.consul.answers.AnswerRule`'s (the
rule the per-service loop shares); a return is not a change, so the caller
compares bodies; queries
are spaced by a minimum interval; errors back off exponentially with jitter
(tenacity), forever, and the backoff resets after any success.  A refused ACL
token is reported once and re-tried slowly, since a token file may be fixed
without a restart.  Every wait is on the stop event, so SIGTERM acts at once.

:class:`ServiceView` is what one service's answers mean; the per-service long polls
run on one event loop (:mod:`~discovery.consul.service_loop`, the same rules with
:meth:`Retry.call_async`), and :mod:`~discovery.consul.catalog_watch` follows the whole
catalog with a fixed number of queries instead.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

from ..errors import AccessDenied, CatalogError
from ..retrying import sleeper, stopped
from ..state.convert import Conversion, convert
from ..state.model import Service
from .answers import AnswerRule, next_index

__all__ = ["AnswerRule", "next_index"]  # re-exported: the rule the loops share lives in .answers

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Update:
    """A changed view of one service, as a watch hands it on.

    ``service`` holds the instances to route; ``statuses`` and ``left_out`` count every
    instance Consul listed (see :class:`~discovery.state.convert.Conversion`); ``answered_at``
    is when Consul's answer arrived and ``seen_at`` when it was converted (``time.monotonic``),
    for the change-to-applied time and its budget.
    """

    service: Service
    index: int
    statuses: tuple[tuple[str, int], ...] = ()
    left_out: tuple[tuple[str, int], ...] = ()
    seen_at: float = 0.0
    answered_at: float = 0.0


@dataclass(frozen=True)
class ConsulRequest:
    """One answer (or failure) of a request to Consul: ``result`` is changed, unchanged or error;
    ``cache`` and ``backend`` are the answer's ``X-Cache`` and ``X-Consul-Query-Backend`` (if any)."""

    endpoint: str
    result: str
    cache: str = ""
    backend: str = ""


Report = Callable[[ConsulRequest], None]


def no_report(_event: ConsulRequest) -> None:
    pass


@dataclass(frozen=True)
class WatchTiming:
    """How the loops pace themselves."""

    wait: float = 300.0  # blocking wait sent to Consul
    min_interval: float = 0.02  # at least this long between two queries of one endpoint
    backoff_min: float = 0.25  # first retry after an error
    backoff_max: float = 5.0  # ceiling of the exponential backoff (a local agent: keep it short)
    denied_retry: float = 10.0  # how often to try again after a 403 (a token file may be fixed)


class Retry:
    """Call Consul until it answers or we are stopped: backoff with jitter, 403 reported once."""

    def __init__(
        self, identity: str, stop: threading.Event, timing: WatchTiming, endpoint: str = "", report: Report = no_report
    ) -> None:
        self.identity = identity
        self.stop = stop
        self.timing = timing
        self.endpoint = endpoint
        self.report = report
        self._denied_reported = False

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, AccessDenied):
            return self.timing.denied_retry
        backoff = tenacity.wait_random_exponential(multiplier=self.timing.backoff_min, max=self.timing.backoff_max)
        return float(backoff(state))

    def _log(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        self._failed(exc, state.attempt_number, delay)

    def _failed(self, exc: BaseException | None, attempt: int, delay: float) -> None:
        self.report(ConsulRequest(self.endpoint, "error"))
        if isinstance(exc, AccessDenied):
            if not self._denied_reported:
                log.error("%s: %s; not retried as an outage, checking again every %.0fs", self.identity, exc, delay)
                self._denied_reported = True
            return
        log.warning("%s: %s; retry %d in %.2fs", self.identity, exc, attempt, delay)

    def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Raises CatalogError only once stopped."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(CatalogError),
            wait=self._wait,
            stop=stopped(self.stop),
            sleep=sleeper(self.stop),
            before_sleep=self._log,
            reraise=True,
        )
        result = retrying(fn, *args, **kwargs)
        self._denied_reported = False
        return result

    async def call_async(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """The same rules on an event loop: the waits are ``asyncio.sleep``, ended by cancelling the task.
        Written out rather than through ``tenacity.AsyncRetrying``, whose set-up per call was a third of
        the watch's CPU for an answer (thousands of long polls each return once per change)."""
        attempt = 0
        while True:
            try:
                result = await fn(*args, **kwargs)
            except CatalogError as exc:
                attempt += 1
                if isinstance(exc, AccessDenied):
                    delay = self.timing.denied_retry
                else:  # tenacity.wait_random_exponential's rule (the exponent capped: 2.0 ** 1024 overflows)
                    delay = random.uniform(
                        0, min(self.timing.backoff_max, self.timing.backoff_min * 2.0 ** min(attempt - 1, 64))
                    )
                self._failed(exc, attempt, delay)
                await asyncio.sleep(delay)
                continue
            self._denied_reported = False
            return result


class Follow:
    """One blocking query, followed until stopped; every answer with a new index goes to ``on_answer``,
    which returns whether it changed anything (None: it did).  Every answer and failure is reported
    as a :class:`ConsulRequest` on ``endpoint``."""

    def __init__(
        self,
        identity: str,
        fetch: Callable[[int, float], tuple[int, Any]],
        on_answer: Callable[[int, Any], bool | None],
        stop: threading.Event,
        timing: WatchTiming = WatchTiming(),
        clock: Callable[[], float] = time.monotonic,
        endpoint: str = "",
        report: Report = no_report,
    ) -> None:
        self.identity = identity
        self.fetch = fetch
        self.on_answer = on_answer
        self.stop = stop
        self.timing = timing
        self.clock = clock
        self.endpoint = endpoint
        self.report = report
        self.retry = Retry(identity, stop, timing, endpoint, report)
        self.rule = AnswerRule()
        #: When the last answer arrived (``clock``), for ``on_answer`` to date what it hands on.
        self.answered_at = 0.0

    def run(self) -> None:
        """Loop until the stop event is set; never raises for Consul trouble."""
        last_start = float("-inf")
        while not self.stop.is_set():
            pause = last_start + self.timing.min_interval - self.clock()
            if pause > 0 and self.stop.wait(pause):
                break
            last_start = self.clock()
            try:
                received, body = self.retry(self._fetch, self.rule.index, self.timing.wait)
            except CatalogError:
                break  # only reached when stopping
            self.answered_at = self.clock()
            if not self.rule.take(received):
                self.report(ConsulRequest(self.endpoint, "unchanged"))
                continue  # the wait elapsed with no change
            changed = self.on_answer(received, body)
            self.report(ConsulRequest(self.endpoint, "unchanged" if changed is False else "changed"))

    def _fetch(self, index: int, wait: float) -> tuple[int, Any]:
        try:
            return self.fetch(index, wait)
        except CatalogError:
            self.rule.failed()
            raise


HEALTH_SERVICE = "/v1/health/service"


def changed_view(
    last: Update | None, conversion: Conversion, index: int, answered_at: float | None = None
) -> Update | None:
    """The update to hand on when ``conversion`` differs from ``last`` (routed instances or counts)."""
    if last is not None and (last.service, last.statuses, last.left_out) == (
        conversion.service,
        conversion.statuses,
        conversion.left_out,
    ):
        return None
    now = time.monotonic()
    return Update(
        conversion.service,
        index,
        conversion.statuses,
        conversion.left_out,
        now,
        now if answered_at is None else answered_at,
    )


class ServiceView:
    """What one service's answers mean: converted (:func:`~discovery.state.convert.convert`), compared
    with the last view, and handed to ``on_update`` when they changed.

    Every instance is read, whatever its checks say (so the catalog can be counted by status), and
    only the passing ones are routed (``passing``), as Consul's ``?passing`` would.  The loop that
    asks Consul is :class:`~discovery.consul.service_loop.ServiceLoop`'s.
    """

    def __init__(
        self, service: str, on_update: Callable[[Update], None], *, tag: str | None = None, passing: bool = True
    ) -> None:
        self.service = service
        self.on_update = on_update
        self.passing = passing
        self.identity = f"health.service({service}{'|' + tag if tag else ''}{'|passing' if passing else ''})"
        self._last: Update | None = None
        self._skips = SkipLog(self.identity)

    def answer(self, index: int, entries: Any, answered_at: float) -> bool:
        """Take one answer; whether it changed the view (and was handed on)."""
        conversion = convert(self.service, list(entries), passing_only=self.passing)
        self._skips.report(conversion)
        update = changed_view(self._last, conversion, index, answered_at)
        if update is None:
            return False
        if self._last is None or update.service != self._last.service:
            log.info(
                "%s: change seen at index %d: %d instances",
                self.identity,
                index,
                len(conversion.service.instances),
            )
        self._last = update
        self.on_update(update)
        return True


class SkipLog:
    """Logs what a conversion skipped, once per distinct set of reasons (not on every answer)."""

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self._notes: tuple[str, ...] = ()

    def report(self, conversion: Conversion) -> None:
        if conversion.skipped != self._notes:
            for note in conversion.skipped:
                log.warning("%s: %s", self.identity, note)
            self._notes = conversion.skipped
