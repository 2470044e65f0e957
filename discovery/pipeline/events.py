"""What the pipeline tells the world: typed events, and the bus that carries them to subscribers.

Every stage emits; nothing downstream is called directly.  The log is one
subscriber (:func:`log_event`); metrics and status subscribe the same way.  A
bus belongs to one watcher: no globals.  Subscribers run on the pipeline's
thread, so they must be quick and must not raise (a subscriber that raises is
logged and skipped, never allowed to stop the pipeline).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import DiscoveryError, ValidationError
from .decide import Decision

log = logging.getLogger("discovery.pipeline")


@dataclass(frozen=True)
class ChangeSeen:
    """A watch saw a new view of a service."""

    service: str
    instances: int


@dataclass(frozen=True)
class Held:
    """The sanity gate holds a change back (or has a new reason to)."""

    service: str
    before: int
    after: int
    reason: str
    grace: float


@dataclass(frozen=True)
class Released:
    """A held change was let through: ``ended`` (it stopped being suspect) or after ``waited`` seconds."""

    service: str
    instances: int
    waited: float
    ended: bool


@dataclass(frozen=True)
class Rendered:
    summary: str
    size: int
    seconds: float


@dataclass(frozen=True)
class Decided:
    summary: str
    decision: Decision


@dataclass(frozen=True)
class Applied:
    """A decision was carried out; ``outcome`` is an :class:`~discovery.pipeline.execute.Outcome` value."""

    summary: str
    outcome: str
    seconds: float
    in_sync: bool


@dataclass(frozen=True)
class Failed:
    """A pass failed at ``stage``; ``kept`` says what HAProxy and the file still hold."""

    stage: str
    error: DiscoveryError
    kept: str


Event = ChangeSeen | Held | Released | Rendered | Decided | Applied | Failed
Subscriber = Callable[[Event], None]


class EventBus:
    """Delivers each event to every subscriber, in the order they subscribed."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Subscriber:
        self._subscribers.append(subscriber)
        return subscriber

    def emit(self, event: Event) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # noqa: BLE001 - an observer must never stop the pipeline
                log.exception("event subscriber %r failed on %s", subscriber, type(event).__name__)


def log_event(event: Event) -> None:
    """The text log: one line per decision, with backends and servers."""
    match event:
        case Held(service, before, after, reason, grace):
            log.warning("holding the change of %s: %d -> %d instances (%s); until that changes or %.0fs pass",
                        service, before, after, reason, grace)
        case Released(service, instances, waited, ended):
            if ended:
                log.info("hold on %s ended: %d instances now", service, instances)
            else:
                log.warning("released the held change of %s after %.1fs: %d instances", service, waited, instances)
        case Rendered(summary, size, _):
            log.info("rendered %s (%d bytes)", summary, size)
        case Decided(summary, decision):
            log.info("plan for %s: %s", summary, decision.describe())
        case Applied(summary, outcome, seconds, in_sync):
            log.info("applied %s: %s in %.1f ms%s", summary, outcome, seconds * 1000,
                     "" if in_sync else "; HAProxy may differ from the file, a reload will follow")
        case Failed(stage, error, kept):
            log.error("%s failed: %s; %s", stage, error, kept)
            if isinstance(error, ValidationError):
                for line in error.details.splitlines()[1:]:
                    log.error("  %s", line)
        case ChangeSeen():
            pass  # the watches log what they saw, with the Consul index
