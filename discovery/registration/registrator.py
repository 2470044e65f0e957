"""``disco registrator``: containers register themselves with the local Consul agent from their labels.

Two threads, one owner.  The ``docker-events`` thread (started, watched and joined through
:class:`~discovery.pipeline.lifecycle.Workers`) follows the engine's event stream and puts each
event on a queue; when the stream closes (dockerd restarted) it reconnects forever with backoff and
jitter (tenacity) and says so on the queue.  The main thread takes the queue in order and is the
only one that writes to Consul:

* ``start`` (and a network connect/disconnect): inspect, :func:`~.labels.plan`, register;
* ``kill`` with a stopping signal, ``stop``: deregister at once, while the container still answers,
  so load balancers drain it; the container is "draining" and is not registered again until it
  starts again (its start event, or a reconcile that finds a new run of it: an engine restarted
  with the container's restart policy sends no event we see), or :data:`DRAIN_HOLD` passes and it
  still runs;
* ``die``, ``destroy``: remove anything left;
* ``pause`` / ``unpause``: the agent's maintenance mode on / off (critical / passing);
* ``health_status``: the TTL check that mirrors a Docker HEALTHCHECK, at once.

A **reconcile** (every ``resync``, after every (re)connection to the engine, and after any failed
write) lists the running containers and makes the agent match: registers what is missing or
different, and removes our own registrations (service IDs ``disco-reg:HOST:…``) whose container
is gone — never anything else in the agent.  Consul or Docker failing makes the reconcile due
again with exponential backoff and jitter, forever; events seen meanwhile only update the
bookkeeping (draining), since the reconcile covers their effect.
"""

from __future__ import annotations

import logging
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import tenacity

from ..consul.client import ConsulClient
from ..errors import CatalogError, DockerUnavailable
from ..pipeline.lifecycle import Workers
from ..retrying import sleeper
from .engine import Engine
from .labels import NO_NETWORK, Container, Placement, Wanted, plan
from .payload import HEALTH, check_ids, differs, docker_check_id, event_lag, payload, stops

log = logging.getLogger(__name__)

#: A container that got a stopping signal but still runs this long is registered again.
DRAIN_HOLD = 120.0
_CONNECTED = "connected"
_WAKE = "wake"


class Registrator:
    def __init__(
        self,
        client: ConsulClient,
        engine: Callable[[], Engine],
        placement: Placement,
        resync: float = 30.0,
        deregister_on_exit: bool = False,
        drain_hold: float = DRAIN_HOLD,
    ) -> None:
        self.client = client
        self.placement = placement
        self.resync = resync
        self.deregister_on_exit = deregister_on_exit
        self.drain_hold = drain_hold
        self.ttl = max(3 * resync, 30.0)
        self._engine = engine()  # the main thread's
        self._events = engine()  # the docker-events thread's
        self._stop = threading.Event()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._workers = Workers(self._stop, notify=lambda: self._queue.put(_WAKE))
        self.registered: dict[str, Wanted] = {}
        self.containers: dict[str, Container] = {}
        #: Containers stopping: when the stop was seen, and the run it stopped (``Container.started_at``).
        self.draining: dict[str, tuple[float, str]] = {}
        self._reported: set[tuple[str, str]] = set()
        self._dirty, self._attempt, self._retry_at = False, 0, 0.0
        self._backoff = tenacity.wait_random_exponential(multiplier=0.25, max=10.0)

    # -- lifecycle ------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to end (any thread; SIGTERM calls this through the signal relay)."""
        self._stop.set()
        self._events.close()
        self._queue.put(_WAKE)

    def run(self) -> None:
        """Until :meth:`stop`; raises WorkerFailed if the events thread dies."""
        self._workers.start("docker-events", self._follow)
        self._next_resync = time.monotonic() + self.resync
        try:
            while not self._stop.is_set():
                self._workers.check()
                due = min(self._next_resync, self._retry_at if self._dirty else math.inf)
                try:
                    item = self._queue.get(timeout=max(0.0, due - time.monotonic()))
                except queue.Empty:
                    item = None
                if isinstance(item, dict):
                    self._on_event(item)
                if item == _CONNECTED or time.monotonic() >= self._next_resync:
                    self._due()
                if self._dirty and time.monotonic() >= self._retry_at and not self._stop.is_set():
                    self._try_reconcile()
        finally:
            self.stop()
            stuck = self._workers.stop_and_join()
            if stuck:
                log.warning("threads still running at exit: %s", ", ".join(stuck))
            self._exit()
        self._workers.check()

    def _exit(self) -> None:
        if not self.deregister_on_exit:
            log.info("exiting; leaving %d registrations (their containers still run)", len(self.registered))
            return
        try:
            ours = [sid for sid in self.client.agent_services() if self.placement.owns(sid)]
            for sid in ours:
                self.client.deregister_service(sid)
            log.info("exiting; deregistered %d registrations", len(ours))
        except CatalogError as exc:
            log.error("exiting; could not deregister: %s", exc)

    def _follow(self) -> None:
        """The docker-events thread: the stream onto the queue, reconnected forever."""
        while not self._stop.is_set():
            retrying = tenacity.Retrying(
                retry=tenacity.retry_if_exception_type(DockerUnavailable),
                wait=tenacity.wait_random_exponential(multiplier=0.25, max=10.0),
                stop=lambda _s: self._stop.is_set(),
                sleep=sleeper(self._stop),
                reraise=True,
                before_sleep=lambda s: log.warning("%s; retrying", s.outcome.exception() if s.outcome else "?"),
            )
            try:
                events = retrying(self._events.events)
            except DockerUnavailable:
                return  # stopped while retrying
            if self._stop.is_set():  # stop() closed the previous stream while this one opened
                self._events.close()
                return
            log.info("following the Docker engine's events")
            self._queue.put(_CONNECTED)
            try:
                for event in events:
                    self._queue.put(event)
                reason = "the Docker event stream closed (engine restarted?)"
            except DockerUnavailable as exc:
                reason = str(exc)
            if self._stop.is_set():
                return
            log.warning("%s; reconnecting", reason)
            self._stop.wait(random.uniform(0.05, 0.3))

    # -- reconcile ------------------------------------------------------------------------------------------

    def _due(self) -> None:
        if not self._dirty:
            self._dirty, self._retry_at = True, time.monotonic()

    def _failed(self, what: str, exc: Exception) -> None:
        self._attempt += 1
        delay = self._backoff(_state(self._attempt))
        log.warning("%s: %s; reconciling in %.1fs", what, exc, delay)
        self._dirty, self._retry_at = True, time.monotonic() + delay

    def _try_reconcile(self) -> None:
        try:
            self.reconcile()
        except (CatalogError, DockerUnavailable) as exc:
            self._failed("reconcile failed", exc)
            return
        self._dirty, self._attempt = False, 0
        self._next_resync = time.monotonic() + self.resync

    def reconcile(self) -> None:
        """Make the agent hold exactly what the running containers ask for (our registrations only)."""
        while True:  # events already queued only update the bookkeeping: this pass covers their effect
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, dict):
                self._note(item)
        containers = self._engine.running()
        now = time.monotonic()
        running = {c.id: c for c in containers}
        for cid, (since, run) in list(self.draining.items()):
            # A new run (the engine restarted it while its events were missed, e.g. a restart policy after
            # an engine restart) is no longer the one that was stopping.
            again = bool(run) and cid in running and running[cid].started_at not in ("", run)
            if cid not in running or now - since > self.drain_hold or again:
                del self.draining[cid]
        desired: dict[str, tuple[Wanted, Container]] = {}
        for c in containers:
            if c.id not in self.draining:
                for w in self._plan(c):
                    desired[w.id] = (w, c)
        self.containers = running
        self._reported = {r for r in self._reported if r[0] in running}
        agent = self.client.agent_services()
        checks = self.client.agent_checks()
        for sid, (w, c) in desired.items():
            # What the agent already holds is adopted as is (after a restart too): registering it
            # again would reset its checks to critical until they run.
            if sid not in agent or differs(agent[sid], w) or not all(k in checks for k in check_ids(w)):
                self._register(w, c)
            elif w.docker_health:
                self._health(w, c.health)  # the TTL check's heartbeat, with Docker's verdict
            if c.paused != (f"_service_maintenance:{sid}" in checks):
                self.client.maintenance(sid, c.paused, "container paused")
        for sid in agent:
            if self.placement.owns(sid) and sid not in desired:
                self.client.deregister_service(sid)
                log.info("deregistered %s: its container is gone or stopping (reconcile)", sid)
        self.registered = {sid: w for sid, (w, _c) in desired.items()}
        log.debug("reconciled: %d registrations for %d running containers", len(desired), len(containers))

    def _plan(self, c: Container) -> tuple[Wanted, ...]:
        outcome = plan(c, self.placement)
        for reason in outcome.skipped:
            if (c.id, reason) not in self._reported:
                self._reported.add((c.id, reason))
                log.log(logging.INFO if NO_NETWORK in reason else logging.WARNING, "%s", reason)
        return outcome.wanted

    def _register(self, w: Wanted, c: Container) -> None:
        self.client.register_service(payload(w, c, self.ttl))
        self.registered[w.id] = w
        reg = w.registration
        log.info(
            "registered %s (%s at %s:%d, %s check%s) for %s",
            w.id,
            reg.service,
            reg.address,
            reg.port,
            reg.check.kind,
            ", Docker health " + (c.health or "?") if w.docker_health else "",
            c.who,
        )
        if c.paused:
            self.client.maintenance(w.id, True, "container paused")

    def _health(self, w: Wanted, health: str) -> None:
        self.client.ttl_update(docker_check_id(w.id), HEALTH.get(health, "critical"), f"Docker: {health or '?'}")

    # -- events ---------------------------------------------------------------------------------------------

    def _note(self, event: Mapping[str, Any]) -> tuple[str, str, str, Mapping[str, Any]]:
        """Bookkeeping every event gets, even while a reconcile is pending: which containers drain."""
        actor = event.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        kind = event.get("Type", "container")
        cid = str(attrs.get("container", "") if kind == "network" else actor.get("ID") or event.get("id") or "")
        action, _, detail = str(event.get("Action") or event.get("status") or "").partition(":")
        if action in ("kill", "stop") and (action == "stop" or self._stopping(cid, str(attrs.get("signal", "")))):
            known = self.containers.get(cid)
            self.draining.setdefault(cid, (time.monotonic(), known.started_at if known else ""))
        elif action in ("start", "destroy"):
            self.draining.pop(cid, None)
        return action, cid, detail.strip(), attrs

    def _stopping(self, cid: str, sig: str) -> bool:
        known = self.containers.get(cid)
        return stops(sig, known.stop_signal if known else "")

    def _of(self, cid: str) -> list[Wanted]:
        return [w for w in self.registered.values() if w.container == cid]

    def _on_event(self, event: Mapping[str, Any]) -> None:
        action, cid, detail, attrs = self._note(event)
        if self._dirty or not cid or (action == "kill" and cid not in self.draining):
            return  # a reconcile is due and covers this event; or a signal that does not stop the container
        try:
            if action in ("start", "connect", "disconnect"):
                self._refresh(cid)
            elif action in ("kill", "stop", "die", "destroy"):
                why = f"{action} {attrs.get('signal', '')}".strip()
                for w in self._of(cid):
                    self.client.deregister_service(w.id)
                    del self.registered[w.id]
                    log.info(
                        "deregistered %s: %s%s (%s)",
                        w.id,
                        why,
                        ", draining" if cid in self.draining else "",
                        event_lag(event),
                    )
                if action == "destroy":
                    self.containers.pop(cid, None)
            elif action in ("pause", "unpause"):
                for w in self._of(cid):
                    self.client.maintenance(w.id, action == "pause", "container paused")
                    log.info(
                        "%s: container %sd, %s (%s)",
                        w.id,
                        action,
                        "critical" if action == "pause" else "passing",
                        event_lag(event),
                    )
            elif action == "health_status":
                for w in self._of(cid):
                    if w.docker_health:
                        self._health(w, detail)
                        log.info("%s: Docker health %s (%s)", w.id, detail, event_lag(event))
        except (CatalogError, DockerUnavailable) as exc:
            self._failed(f"{action} of {cid[:12]}", exc)

    def _refresh(self, cid: str) -> None:
        """Register what a container asks for now, remove what it no longer asks for."""
        if cid in self.draining:
            return
        c = self._engine.inspect(cid)
        wanted = self._plan(c) if c is not None else ()
        if c is not None:
            self.containers[cid] = c
        keep = {w.id for w in wanted}
        for w in self._of(cid):
            if w.id not in keep:
                self.client.deregister_service(w.id)
                del self.registered[w.id]
                log.info("deregistered %s: its container no longer asks for it", w.id)
        for w in wanted:
            if self.registered.get(w.id) != w and c is not None:
                self._register(w, c)


def _state(attempt: int) -> tenacity.RetryCallState:
    """A RetryCallState carrying only an attempt number, for tenacity's wait strategies."""
    state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
    state.attempt_number = attempt
    return state
