"""Operator overrides in the pipeline: applied to each desired state, and the servers HAProxy holds
in DRAIN or MAINT at run time.

A config file cannot say "drain" (HAProxy 2.6 has no such server keyword), so these states are
not rendered: after every pass the servers the overrides name are put in their state through
the runtime API (``set server B/S state drain|maint``), servers no override names any more are
set ``ready`` again, and a reload (which starts every server ready) is followed at once by the
same.  The live path's read-back expects exactly these states (:attr:`LiveUpdater.admin
<discovery.pipeline.live.LiveUpdater.admin>`), so a drained server is not drift.  Only servers
the running config lists are touched; reading back is ``show servers state`` of the backends
concerned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ..consul.overrides_watch import OverridesUpdate
from ..errors import LiveUpdateFailed
from ..haproxy.plan import ParsedConfig
from ..haproxy.runtime import RuntimeAPI, ServerState
from ..state.model import DesiredState
from ..state.overrides import Applied, Overrides, apply, in_force
from .events import Event, OverridesInForce
from .live import LiveUpdater

log = logging.getLogger(__name__)
READY = "ready"


def state_of(server: ServerState) -> str:
    return "maint" if server.in_maintenance else "drain" if server.draining else READY


class AdminStates:
    """Puts HAProxy's servers in the states the overrides ask for; remembers which it changed."""

    def __init__(self, api: RuntimeAPI) -> None:
        self.api = api
        self.wanted: dict[tuple[str, str], str] = {}
        self._touched: set[tuple[str, str]] = set()  # servers we set out of ready (to set back)
        #: The last apply failed: the pipeline should try again.
        self.pending = False

    def apply(
        self, wanted: Mapping[tuple[str, str], str], running: ParsedConfig | None, draining: set[tuple[str, str]]
    ) -> int:
        """Make HAProxy's servers listed in ``running`` match ``wanted`` (others: ready), leaving
        alone the servers the live path drains for removal; return how many commands were sent.
        A failure is logged and leaves ``pending`` set."""
        self.wanted = dict(wanted)
        concerned = set(wanted) | self._touched
        if running is None or not concerned:
            self.pending = False
            return 0
        sent = 0
        try:
            for backend in sorted({b for b, _ in concerned}):
                listed = running.servers_of(backend)
                states = self.api.servers(backend)
                for name, server in states.items():
                    key = (backend, name)
                    if name not in listed or key in draining or key not in concerned:
                        continue
                    want = wanted.get(key, READY)
                    if state_of(server) != want:
                        self.api.set_state(backend, name, want)
                        log.info("override: %s/%s set to %s", backend, name, want)
                        sent += 1
            self._touched = set(wanted)
            self.pending = False
        except LiveUpdateFailed as exc:
            log.warning("could not apply drain/disable overrides: %s; trying again", exc)
            self.pending = True
        return sent


class OverrideStage:
    """The pipeline's side of operator overrides: the documents in force (from
    :class:`~discovery.consul.overrides_watch.OverridesUpdate`), applied to each state before it
    is rendered, and the runtime states set after it is executed."""

    def __init__(self, updater: LiveUpdater | None, emit: Callable[[Event], None]) -> None:
        self.overrides = Overrides()
        self.updater = updater
        self.emit = emit
        self.admin = AdminStates(updater.api) if updater is not None else None
        self._notes: tuple[str, ...] = ()
        self._warned = False
        #: The overrides watch has answered once (``disco watch --once`` waits for it).
        self.received = False

    @property
    def pending(self) -> bool:
        """An apply of runtime states failed: a pass should try again."""
        return self.admin is not None and self.admin.pending

    def receive(self, update: OverridesUpdate) -> None:
        self.received = True
        self.overrides = update.overrides
        counts = in_force(update.overrides)
        self.emit(OverridesInForce(tuple(counts.items()), len(update.overrides.malformed)))

    def apply(self, state: DesiredState) -> Applied:
        """The state with the overrides in; what matches nothing is logged once each time it changes."""
        applied = apply(state, self.overrides)
        if applied.unmatched != self._notes:
            for note in applied.unmatched:
                log.warning("override %s", note)
            self._notes = applied.unmatched
        return applied

    def executing(self, applied: Applied, running: ParsedConfig | None) -> None:
        """Before a pass is executed: the servers HAProxy runs take their new runtime states first, so
        the live path's read-back finds each listed server ready or in the state asked for."""
        self.executed(applied, running)

    def executed(self, applied: Applied, running: ParsedConfig | None) -> None:
        """After a pass (and before it): put the servers in the runtime states the overrides ask for."""
        if self.admin is None or self.updater is None:
            if applied.admin and not self._warned:
                log.warning("overrides: drain and disable need --runtime-socket; not applied")
                self._warned = True
            return
        self.admin.apply(applied.admin, running, set(self.updater.draining))
        self.updater.admin = dict(applied.admin)
