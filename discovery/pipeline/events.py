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

from ..consul.watch import ConsulRequest as ConsulRequest  # re-exported: an event like the others
from ..errors import DiscoveryError, ValidationError
from .decide import Decision
from .timeline import Timed

log = logging.getLogger("discovery.pipeline")


@dataclass(frozen=True)
class ChangeSeen:
    """A watch saw a new set of instances to route for a service; ``seen_at`` is when Consul's
    answer arrived (``time.monotonic``)."""

    service: str
    instances: int
    seen_at: float = 0.0


@dataclass(frozen=True)
class Counted:
    """Every instance Consul lists for a service, by status, and those left out, by reason
    (emitted for every new answer, whether or not what is routed changed)."""

    service: str
    statuses: tuple[tuple[str, int], ...]
    left_out: tuple[tuple[str, int], ...]


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
class Validated:
    """``haproxy -c`` (or ``--check-cmd``) judged a candidate, emitted by the executor."""

    seconds: float
    ok: bool


@dataclass(frozen=True)
class Applied:
    """A decision was carried out; ``outcome`` is an :class:`~discovery.pipeline.execute.Outcome` value;
    ``servers`` is the number of servers per backend of the state applied."""

    summary: str
    outcome: str
    seconds: float
    in_sync: bool
    servers: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class OverridesInForce:
    """Operator overrides read from Consul KV: documents in force per kind, and malformed ones."""

    kinds: tuple[tuple[str, int], ...]
    malformed: int


@dataclass(frozen=True)
class FailoverReached:
    """A failover datacenter answers (``up``) or not, and how many instances it lends now."""

    dc: str
    up: bool
    instances: int


@dataclass(frozen=True)
class Heartbeat:
    """The loop turned (at least once a second while it runs): liveness for ``/healthz``."""

    at: float


@dataclass(frozen=True)
class Stopping:
    """The loop was asked to stop; the watcher is no longer ready."""


@dataclass(frozen=True)
class Failed:
    """A pass failed at ``stage``; ``kept`` says what HAProxy and the file still hold."""

    stage: str
    error: DiscoveryError
    kept: str


Event = (
    ChangeSeen
    | Counted
    | Held
    | Released
    | Rendered
    | Decided
    | Validated
    | Applied
    | Timed
    | Failed
    | ConsulRequest
    | OverridesInForce
    | FailoverReached
    | Heartbeat
    | Stopping
)
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
            except Exception:
                log.exception("event subscriber %r failed on %s", subscriber, type(event).__name__)


def log_event(event: Event) -> None:
    """The text log: one line per decision, with backends and servers."""
    match event:
        case Held(service, before, after, reason, grace):
            log.warning(
                "holding the change of %s: %d -> %d instances (%s); until that changes or %.0fs pass",
                service,
                before,
                after,
                reason,
                grace,
            )
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
            log.info(
                "applied %s: %s in %.1f ms%s",
                summary,
                outcome,
                seconds * 1000,
                "" if in_sync else "; HAProxy may differ from the file, a reload will follow",
            )
        case Failed(stage, error, kept):
            log.error("%s failed: %s; %s", stage, error, kept)
            if isinstance(error, ValidationError):
                for line in error.details.splitlines()[1:]:
                    log.error("  %s", line)
        case Timed():
            log.debug("%s", event.line())
        case Stopping():
            log.info("stopping")
        case _:
            pass  # the watches log what they saw, with the Consul index; the rest are for metrics
