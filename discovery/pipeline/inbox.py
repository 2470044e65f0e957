"""The watcher's inbox: the messages its worker threads post, and what each one changes.

Only the watcher's loop takes messages off it (the pipeline has a single writer): a service's
answer goes through the gate (:mod:`~discovery.pipeline.gatekeeper`), the catalog's list to the
followed set (:mod:`~discovery.pipeline.followed`), failover and override answers to their stages.

A discovered service whose last local instance went (it left the catalog) while a failover
datacenter has instances of it stays followed (:meth:`Inbox.keep_for_failover`): its local part
empties through the gate like any service's, its routes and settings stay, and its failover
servers serve; it leaves once no failover datacenter has an instance of it either
(:meth:`Inbox.settle_kept`), or at once when its route tags are taken off.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from dataclasses import replace

from ..consul.discover import NO_ROUTE_TAG, Gone, Listed
from ..consul.failover_watch import FailoverReach, FailoverUpdate
from ..consul.overrides_watch import OverridesUpdate
from ..consul.watch import ConsulRequest, Update
from .events import ChangeSeen, Counted, EventBus
from .failover import FailoverStage
from .followed import Followed
from .gatekeeper import Gatekeeper, LeaderStatus
from .overrides import OverrideStage
from .quiescence import Quiescence
from .timeline import Timeline

log = logging.getLogger(__name__)


class _Stop:
    """The inbox message that ends the loop."""


class _Wake:
    """The inbox message that makes the loop look at its workers."""


STOP, WAKE = _Stop(), _Wake()
Message = (
    Update
    | Listed
    | Gone
    | ConsulRequest
    | LeaderStatus
    | OverridesUpdate
    | FailoverUpdate
    | FailoverReach
    | _Stop
    | _Wake
)


class Inbox:
    """One queue from every worker to the loop; ``origin`` is the oldest change not yet in a pass."""

    def __init__(
        self,
        followed: Followed,
        gate: Gatekeeper,
        failover: FailoverStage,
        overrides: OverrideStage,
        events: EventBus,
        clock: Callable[[], float],
    ) -> None:
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._followed = followed
        self._gate = gate
        self._failover = failover
        self._overrides = overrides
        self.events = events
        self.clock = clock
        self.origin: tuple[float, float] | None = None  # the oldest pending change: (answered_at, seen_at)
        #: Discovered services no longer in the local catalog, followed for their failover instances.
        self.kept: set[str] = set()

    def put(self, message: Message) -> None:
        """Post a message; safe from any thread."""
        self._queue.put(message)

    def receive(self, timer: Quiescence, timeout: float) -> bool:
        """Take messages (waiting up to ``timeout`` for the first) until none is left; each change
        starts ``timer``.  False when asked to stop."""
        try:
            message = self._queue.get(timeout=timeout)
        except queue.Empty:
            return True
        while True:
            if isinstance(message, _Stop):
                return False
            if isinstance(message, ConsulRequest):
                self.events.emit(message)
            elif isinstance(message, (Listed, Gone)):
                if isinstance(message, Listed):
                    self.kept.difference_update(message.services)  # back in the catalog
                kept = isinstance(message, Gone) and self.keep_for_failover(message)
                if kept or self._followed.apply(message, self._gate.leave, self.events.emit):
                    timer.change(self.clock())
            elif isinstance(message, Update) and message.service.name in self._followed.views:
                service = message.service
                self.events.emit(Counted(service.name, message.statuses, message.left_out))
                if service.name in self._gate.holds or self._followed.views.get(service.name) != service:
                    self.events.emit(ChangeSeen(service.name, len(service.instances), message.seen_at))
                    if self._gate.admit(service):
                        timer.change(self.clock())
                        self.origin = self.origin or (message.answered_at or message.seen_at, message.seen_at)
            elif isinstance(message, (FailoverUpdate, FailoverReach)):
                if self._failover.receive(message) | self.settle_kept():
                    timer.change(self.clock())
            elif isinstance(message, OverridesUpdate):
                self._overrides.receive(message)
                timer.change(self.clock())
            elif isinstance(message, LeaderStatus) and self._gate.on_leader(message):
                timer.change(self.clock())
            try:
                message = self._queue.get_nowait()
            except queue.Empty:
                return True

    def keep_for_failover(self, message: Gone) -> bool:
        """``message.service`` left the catalog while a failover datacenter has instances of it: keep
        following it with no local instance (gated like the loss of its last one).  False when it is
        not kept (its route tags were taken off, it was never read, or no failover instance)."""
        name = message.service
        view = self._followed.views.get(name)
        if message.reason == NO_ROUTE_TAG or view is None or not self._failover.has_instances(name):
            return False
        if name not in self.kept:
            log.info("failover: %s has no local instance left; followed for its failover instances", name)
        self.kept.add(name)
        self._followed.apply(message, lambda _n, _g: False, self.events.emit)  # its counts go to zero
        self._gate.admit(replace(view, instances=()))
        return True

    def settle_kept(self) -> bool:
        """Drop the kept services no failover datacenter has an instance of any more (their failover
        views went through the failover gate already); return whether any was dropped."""
        gone = sorted(name for name in self.kept if not self._failover.has_instances(name))
        for name in gone:
            self.kept.discard(name)
            log.info("failover: %s has no instance here or in a failover datacenter: no longer followed", name)
            self._gate.leave(name, False)
        return bool(gone)

    def timeline(self) -> Timeline:
        """A pass starts: its stages are timed from the oldest change it carries."""
        now = self.clock()
        answered_at, seen_at = self.origin or (now, now)
        self.origin = None
        timeline = Timeline(answered_at, seen_at, self.clock)
        timeline.mark("wait")
        return timeline
