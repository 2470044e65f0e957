"""Failover datacenters in the pipeline: the last view of each service in each of them, merged into
the desired state as backup servers (:mod:`discovery.state.failover`).

Each view is gated like a local one (:mod:`discovery.state.gate`): an answer that takes away
``share`` of a datacenter's instances at once is held for ``grace`` (or until an answer that is
not suspect comes), so a datacenter whose Consul answers an empty list while it recovers does
not drop its servers; a datacenter that does not answer at all (the WAN link down) changes
nothing, its last instances are kept, and it is reported (:class:`FailoverReached`).  Nothing
here can take a local instance away: merging only appends backups.

The services followed there come and go with the local ones (``--discover``):
:meth:`FailoverStage.follow` and :meth:`FailoverStage.forget` are called as their watches are
started and stopped (:mod:`~discovery.pipeline.failover_follows`); a late answer for a service
no longer followed is ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..consul.failover_watch import FailoverReach, FailoverUpdate
from ..state import failover
from ..state.gate import GatePolicy, suspect
from ..state.model import DesiredState, Service
from .events import Event, FailoverReached

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Held:
    proposed: Service
    since: float


class FailoverStage:
    """``dcs`` in order of preference; ``services``: the services followed there."""

    def __init__(
        self,
        dcs: Sequence[str],
        policy: GatePolicy,
        emit: Callable[[Event], None],
        clock: Callable[[], float],
    ) -> None:
        self.dcs = tuple(dcs)
        self.policy = policy
        self.emit = emit
        self.clock = clock
        self.views: dict[tuple[str, str], Service] = {}
        self.holds: dict[tuple[str, str], _Held] = {}
        self.unreachable: dict[str, set[str]] = {}  # dc -> services it does not answer for
        self.followed: set[str] = set()
        #: (service, dc) not answered yet, neither instances nor a failure (``disco watch --once`` waits for them).
        self.awaited: set[tuple[str, str]] = set()
        self._notes: tuple[str, ...] = ()

    def follow(self, service: str) -> None:
        """``service``'s watches in the failover datacenters start: their answers are taken from now on."""
        self.followed.add(service)
        self.awaited.update((service, dc) for dc in self.dcs)

    def forget(self, service: str) -> None:
        """``service`` is no longer followed: its failover instances and reports go."""
        self.followed.discard(service)
        for dc in self.dcs:
            self.awaited.discard((service, dc))
            self.holds.pop((service, dc), None)
            gone = self.views.pop((service, dc), None) is not None
            down = self.unreachable.get(dc, set())
            if gone or service in down:
                down.discard(service)
                self._report(dc)

    def has_instances(self, service: str) -> bool:
        """Does a failover datacenter have instances of ``service`` (as merged now)?"""
        return any((view := self.views.get((service, dc))) is not None and view.instances for dc in self.dcs)

    def receive(self, message: FailoverUpdate | FailoverReach) -> bool:
        """Take a watch's message; return whether the merged state may have changed."""
        name = message.service if isinstance(message, FailoverReach) else message.service.name
        if name not in self.followed:
            return False  # its watch was stopped; this answer was on its way
        if not isinstance(message, FailoverReach) or not message.ok:
            self.awaited.discard((name, message.dc))  # answered, or failed: not waited for any longer
        if isinstance(message, FailoverReach):
            down = self.unreachable.setdefault(message.dc, set())
            (down.discard if message.ok else down.add)(message.service)
            self._report(message.dc)
            return False
        key = (message.service.name, message.dc)
        previous = self.views.get(key)
        self.holds.pop(key, None)
        if suspect(previous, message.service, self.policy.share):
            self.holds[key] = _Held(message.service, self.clock())
            log.warning(
                "holding the change of %s in %s: %d -> %d instances; until that changes or %.0fs pass",
                message.service.name,
                message.dc,
                len(previous.instances) if previous else 0,
                len(message.service.instances),
                self.policy.grace,
            )
            return False
        self.views[key] = message.service
        self._report(message.dc)
        return True

    def release_expired(self) -> bool:
        changed = False
        for key, held in list(self.holds.items()):
            if self.clock() - held.since >= self.policy.grace:
                del self.holds[key]
                self.views[key] = held.proposed
                log.warning("released the held change of %s in %s: %d instances", *key, len(held.proposed.instances))
                self._report(key[1])
                changed = True
        return changed

    def _report(self, dc: str) -> None:
        count = sum(len(view.instances) for (_, d), view in self.views.items() if d == dc)
        self.emit(FailoverReached(dc, not self.unreachable.get(dc), count))

    def local_only(self, running: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        """The servers HAProxy runs per backend, failover ones left out (the gate judges local views)."""
        return {b: tuple(n for n in names if failover.is_failover(n, self.dcs) is None) for b, names in running.items()}

    def merge(self, state: DesiredState) -> DesiredState:
        """``state`` with each service's failover instances appended as backups."""
        if not self.views:
            return state
        notes: list[str] = []
        services = tuple(
            failover.merge(svc, {dc: self.views.get((svc.name, dc)) for dc in self.dcs}, self.dcs, notes)
            for svc in state.services
        )
        if tuple(notes) != self._notes:
            for note in notes:
                log.warning("failover: %s", note)
            self._notes = tuple(notes)
        return DesiredState(services, state.discovered)
