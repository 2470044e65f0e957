"""Follow one service's instances with Consul blocking queries.

The loop follows Consul's rules for blocking queries (and consul-template's
``watch/view.go``): a return is not a change, so compare the body; an index that
goes backwards is reset to 0 and re-read; an index below 1 is taken as 1 so the
loop cannot spin; queries are spaced by a minimum interval; errors back off
exponentially with jitter (tenacity), forever, and the backoff resets after any
success.  A refused ACL token is reported once and re-tried slowly, since a token
file may be fixed without a restart.  Every wait is on the stop event, so SIGTERM
acts at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

from .catalog import Catalog
from .desired import convert
from .errors import AccessDenied, CatalogError
from .model import Service

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Update:
    """A changed view of one service, as the watcher hands it on."""

    service: Service
    index: int


def next_index(previous: int, received: int) -> int:
    """The index for the next blocking query, per Consul's documented rules."""
    if received < previous:
        return 0  # went backwards (snapshot restore, new cluster): start again from scratch
    return max(received, 1)  # 0 would make the next query return at once, forever


@dataclass(frozen=True)
class WatchTiming:
    """How the loop paces itself."""

    wait: float = 300.0           # blocking wait sent to Consul
    min_interval: float = 0.05    # at least this long between two queries of one service
    backoff_min: float = 0.25     # first retry after an error
    backoff_max: float = 5.0      # ceiling of the exponential backoff (a local agent: keep it short)
    denied_retry: float = 30.0    # how often to try again after a 403


class ServiceWatch:
    """One service, one blocking query at a time, results handed to ``on_update``."""

    def __init__(self, catalog: Catalog, service: str, on_update: Callable[[Update], None],
                 stop: threading.Event, *, tag: str | None = None, passing: bool = True,
                 timing: WatchTiming = WatchTiming(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.catalog = catalog
        self.service = service
        self.tag = tag
        self.passing = passing
        self.on_update = on_update
        self.stop = stop
        self.timing = timing
        self.clock = clock
        self.identity = f"health.service({service}{'|' + tag if tag else ''}{'|passing' if passing else ''})"
        self._denied_reported = False
        self._notes: tuple[str, ...] = ()

    def _wait_for_retry(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, AccessDenied):
            return self.timing.denied_retry
        backoff = tenacity.wait_random_exponential(multiplier=self.timing.backoff_min, max=self.timing.backoff_max)
        return float(backoff(state))

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        if isinstance(exc, AccessDenied):
            if not self._denied_reported:
                log.error("%s: %s; not retried as an outage, checking again every %.0fs",
                          self.identity, exc, delay)
                self._denied_reported = True
            return
        log.warning("%s: %s; retry %d in %.2fs", self.identity, exc, state.attempt_number, delay)

    def _query(self, index: int) -> tuple[int, list]:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(CatalogError),
            wait=self._wait_for_retry,
            stop=lambda _state: self.stop.is_set(),
            sleep=self.stop.wait,
            before_sleep=self._log_retry,
            reraise=True,
        )
        new_index, entries = retrying(self.catalog.health_service, self.service, tag=self.tag,
                                      index=index, wait=self.timing.wait, passing=self.passing)
        self._denied_reported = False
        return new_index, list(entries)

    def run(self) -> None:
        """Loop until the stop event is set; never raises for Consul trouble."""
        index, last, last_start = 0, None, float("-inf")
        while not self.stop.is_set():
            pause = last_start + self.timing.min_interval - self.clock()
            if pause > 0 and self.stop.wait(pause):
                break
            last_start = self.clock()
            try:
                received, entries = self._query(index)
            except CatalogError:
                break  # only reached when stopping: tenacity re-raises the last error
            if received == index and last is not None:
                continue  # the wait elapsed with no change
            index = next_index(index, received)
            conversion = convert(self.service, entries)
            if conversion.skipped != self._notes:
                for note in conversion.skipped:
                    log.warning("%s: %s", self.identity, note)
                self._notes = conversion.skipped
            if conversion.service != last:
                last = conversion.service
                log.info("%s: change seen at index %d: %d instances", self.identity, received,
                         len(last.instances))
                self.on_update(Update(last, received))
