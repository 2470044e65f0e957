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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from ..consul.client import Catalog
from ..errors import CatalogError
from ..state.gate import GatePolicy, Hold, decide, release, suspect
from ..state.model import Instance, Service
from .events import Event, Held, Released

ASKING = "asking Consul for its leader"
NO_LEADER = "Consul has no leader"  # the reason the gate's rules give


@dataclass(frozen=True)
class LeaderStatus:
    """The probe's answer: does Consul have a leader?"""

    healthy: bool


class Gatekeeper:
    """Holds suspect proposals; ``services`` is the pipeline's view, updated in place."""

    def __init__(
        self,
        policy: GatePolicy,
        services: dict[str, Service | None],
        emit: Callable[[Event], None],
        clock: Callable[[], float],
    ) -> None:
        self.policy = policy
        self.services = services
        self.emit = emit
        self.clock = clock
        self.holds: dict[str, Hold] = {}
        self.probe_wanted = threading.Event()
        # Before a service's first view: the servers HAProxy ran for it when the watcher started.
        self._baseline: dict[str, Service] = {}

    def remember(self, running: Mapping[str, Iterable[str]]) -> None:
        """The server names of each backend HAProxy runs at start.  A service's first view is then
        judged against them like any later change: a restarted watcher whose first answer from
        Consul takes every server away holds it instead of emptying a backend that serves.
        (Only names matter to the gate's rules: the instances carry nothing else.)"""
        self._baseline = {
            name: Service(name, tuple(Instance(id=server, node="", address="", port=0) for server in sorted(servers)))
            for name, servers in running.items()
            if servers
        }

    def _previous(self, name: str) -> Service | None:
        view = self.services.get(name)
        return view if view is not None else self._baseline.get(name)

    def _set(self, service: Service) -> None:
        self.services[service.name] = service
        self._baseline.pop(service.name, None)

    def _drop(self, name: str) -> None:
        self.services.pop(name, None)
        self._baseline.pop(name, None)

    def admit(self, proposed: Service) -> bool:
        """Take ``proposed`` unless it is suspect; return whether the view changed."""
        name = proposed.name
        previous = self._previous(name)
        held = self.holds.pop(name, None)
        if suspect(previous, proposed, self.policy.share):
            # Held at once; the probe's answer decides.  A hold already reported keeps its reason meanwhile.
            self.holds[name] = Hold(proposed, held.since, held.reason) if held else Hold(proposed, self.clock(), ASKING)
            self._want_probe()
            return False
        if held is not None:
            self.emit(Released(name, len(proposed.instances), self.clock() - held.since, ended=True))
        self._set(proposed)
        self._want_probe()
        return True

    def leave(self, name: str, gated: bool) -> bool:
        """The service is no longer followed; return whether the view changed.

        Its route tags taken off (a deliberate change, the instances still run): dropped at once.
        ``gated`` (its instances went: the catalog no longer lists it, or none carries ``--tag``):
        held like the loss of its last instance, so a Consul that answers an empty list while it
        recovers does not drop every backend; when the hold is let through, the service is dropped."""
        previous = self._previous(name)
        gone = Service(name)
        if gated and suspect(previous, gone, self.policy.share):
            held = self.holds.get(name)
            self.holds[name] = (
                replace(held, proposed=gone, remove=True) if held else Hold(gone, self.clock(), ASKING, remove=True)
            )
            self._want_probe()
            return False
        self._drop(name)
        hold = self.holds.pop(name, None)
        if hold is not None and hold.reason != ASKING:
            self.emit(Released(name, 0, self.clock() - hold.since, ended=True))
        self._want_probe()
        return True

    def on_leader(self, status: LeaderStatus) -> bool:
        """Re-decide every hold with Consul's health; return whether any change was let through."""
        changed = False
        for name, hold in list(self.holds.items()):
            previous = self._previous(name)
            reason = decide(self.policy, previous, hold.proposed, status.healthy)
            if reason is None:
                del self.holds[name]
                self._settle(hold)
                changed = True
                if hold.reason != ASKING:  # a hold that was reported ends, or Consul is back
                    self.emit(
                        Released(
                            name,
                            len(hold.proposed.instances),
                            self.clock() - hold.since,
                            ended=hold.reason != NO_LEADER,
                        )
                    )
            elif release(self.policy, hold, self.clock(), status.healthy):
                changed |= self._release(name)
            elif reason != hold.reason:
                self._hold(hold, previous, reason)
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

    def _hold(self, hold: Hold, previous: Service | None, reason: str) -> None:
        proposed = hold.proposed
        self.holds[proposed.name] = replace(hold, reason=reason)
        if reason != ASKING:
            self.emit(
                Held(
                    proposed.name,
                    len(previous.instances) if previous else 0,
                    len(proposed.instances),
                    reason,
                    self.policy.grace,
                )
            )
        self._want_probe()

    def _settle(self, hold: Hold) -> None:
        """Apply a hold let through: the held view, or no view for a service that left the catalog."""
        if hold.remove:
            self._drop(hold.proposed.name)
        else:
            self._set(hold.proposed)

    def _release(self, name: str) -> bool:
        hold = self.holds.pop(name)
        self._settle(hold)
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

    def __init__(
        self,
        catalog: Catalog,
        wanted: threading.Event,
        post: Callable[[LeaderStatus], None],
        stop: threading.Event,
        interval: float = 1.0,
    ) -> None:
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
