"""The sanity gate at work: which proposals to hold, and a probe that asks Consul for its leader.

The rules are pure (:mod:`discovery.state.gate`); this module keeps the holds
and feeds the rules with Consul's health.  Asking Consul is I/O, so it never
happens on the pipeline's thread: a suspect proposal is held at once ("asking
Consul for its leader"), the :class:`LeaderProbe` thread asks, and its answer
comes back through the pipeline's inbox to :meth:`Gatekeeper.on_leader`, which
re-decides every hold.  The probe asks only while a hold exists, once a second.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..consul.client import Catalog
from ..errors import CatalogError
from ..state.gate import GatePolicy, Hold, decide, release, suspect
from ..state.model import Service
from .events import Event, Held, Released

ASKING = "asking Consul for its leader"
NO_LEADER = "Consul has no leader"  # the reason the gate's rules give


@dataclass(frozen=True)
class LeaderStatus:
    """The probe's answer: does Consul have a leader?"""

    healthy: bool


class Gatekeeper:
    """Holds suspect proposals; ``services`` is the pipeline's view, updated in place."""

    def __init__(self, policy: GatePolicy, services: dict[str, Service | None], emit: Callable[[Event], None],
                 clock: Callable[[], float]) -> None:
        self.policy = policy
        self.services = services
        self.emit = emit
        self.clock = clock
        self.holds: dict[str, Hold] = {}
        self.probe_wanted = threading.Event()

    def admit(self, proposed: Service) -> bool:
        """Take ``proposed`` unless it is suspect; return whether the view changed."""
        name = proposed.name
        previous = self.services.get(name)
        held = self.holds.pop(name, None)
        if suspect(previous, proposed, self.policy.share):
            # Held at once; the probe's answer decides.  A hold already reported keeps its reason meanwhile.
            self.holds[name] = Hold(proposed, held.since, held.reason) if held else Hold(proposed, self.clock(), ASKING)
            self._want_probe()
            return False
        if held is not None:
            self.emit(Released(name, len(proposed.instances), self.clock() - held.since, ended=True))
        self.services[name] = proposed
        self._want_probe()
        return True

    def forget(self, name: str) -> None:
        """The service is no longer followed: drop its view and any hold (a removal is not gated)."""
        self.services.pop(name, None)
        hold = self.holds.pop(name, None)
        if hold is not None and hold.reason != ASKING:
            self.emit(Released(name, 0, self.clock() - hold.since, ended=True))
        self._want_probe()

    def on_leader(self, status: LeaderStatus) -> bool:
        """Re-decide every hold with Consul's health; return whether any change was let through."""
        changed = False
        for name, hold in list(self.holds.items()):
            previous = self.services.get(name)
            reason = decide(self.policy, previous, hold.proposed, status.healthy)
            if reason is None:
                del self.holds[name]
                self.services[name] = hold.proposed
                changed = True
                if hold.reason != ASKING:  # a hold that was reported ends, or Consul is back
                    self.emit(Released(name, len(hold.proposed.instances), self.clock() - hold.since,
                                       ended=hold.reason != NO_LEADER))
            elif release(self.policy, hold, self.clock(), status.healthy):
                changed |= self._release(name)
            elif reason != hold.reason:
                self._hold(hold.proposed, previous, hold.since, reason)
        self._want_probe()
        return changed

    def release_expired(self) -> bool:
        """Let through holds whose grace time is up, whatever Consul says."""
        changed = False
        for name, hold in list(self.holds.items()):
            if self.clock() - hold.since >= self.policy.grace:
                changed |= self._release(name)
        return changed

    def next_expiry(self) -> float | None:
        return min((h.since + self.policy.grace for h in self.holds.values()), default=None)

    def _hold(self, proposed: Service, previous: Service | None, since: float, reason: str) -> None:
        self.holds[proposed.name] = Hold(proposed, since, reason)
        if reason != ASKING:
            self.emit(Held(proposed.name, len(previous.instances) if previous else 0, len(proposed.instances),
                           reason, self.policy.grace))
        self._want_probe()

    def _release(self, name: str) -> bool:
        hold = self.holds.pop(name)
        self.services[name] = hold.proposed
        self.emit(Released(name, len(hold.proposed.instances), self.clock() - hold.since, ended=False))
        self._want_probe()
        return True

    def _want_probe(self) -> None:
        if self.holds:
            self.probe_wanted.set()
        else:
            self.probe_wanted.clear()


class LeaderProbe:
    """A worker thread: while ``wanted`` is set, ask Consul for its leader once per ``interval``."""

    def __init__(self, catalog: Catalog, wanted: threading.Event, post: Callable[[LeaderStatus], None],
                 stop: threading.Event, interval: float = 1.0) -> None:
        self.catalog = catalog
        self.wanted = wanted
        self.post = post
        self.stop = stop
        self.interval = interval

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.wanted.wait(0.5):
                continue
            try:
                healthy = bool(self.catalog.leader())
            except CatalogError:
                healthy = False
            if not self.stop.is_set():
                self.post(LeaderStatus(healthy))
            self.stop.wait(self.interval)
