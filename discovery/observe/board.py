"""The dashboard's live state: an event subscriber, one thread that builds snapshots, and their subscribers.

- As a subscriber of the watcher's events (:meth:`Board.__call__`, on the pipeline's thread) it
  keeps the recent events as a timeline (changes seen, holds, applies with live/reload and their
  latency, failures, Consul lost and back), and marks the snapshot out of date.  Quick, no I/O.
  A change seen is shown with the apply (or hold) that follows it, so that the snapshot is not
  built beside the pass it would slow down; at most ``SETTLE`` seconds later if none follows.
- :meth:`Board.run`, a thread the watcher owns, builds a snapshot (the adapter in
  :mod:`.board_data`: Consul, the file, HAProxy) when something changed and a dashboard is open,
  at most every ``min_gap`` seconds, and every ``refresh`` seconds while one is open (HAProxy's
  checks and sessions change without an event).  With no dashboard open it builds nothing.
- Each open dashboard (a Server-Sent Events stream, :meth:`Board.next`) waits for a newer
  snapshot; one snapshot is built and encoded once, whatever the number of dashboards.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..consul.watch import ConsulRequest
from ..pipeline.events import (
    Applied,
    ChangeSeen,
    Event,
    Failed,
    FailoverReached,
    Held,
    OverridesInForce,
    Released,
)
from ..pipeline.timeline import Timed

log = logging.getLogger(__name__)

#: Seconds a change seen waits for the apply that follows it before the snapshot is built anyway.
SETTLE = 0.25

Snapshot = Callable[[list[str], dict[str, str]], dict[str, Any]]


class Board:
    def __init__(
        self,
        snapshot: Snapshot,
        services: tuple[str, ...],
        about: dict[str, Any],
        *,
        refresh: float = 5.0,
        min_gap: float = 0.05,
        keep: int = 50,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """``snapshot(services, held)``: the adapter; ``services``: the ``--service`` names (always shown);
        ``about``: what the page says about this watcher (version, Consul, HAProxy)."""
        self.snapshot, self.about = snapshot, about
        self.refresh, self.min_gap = refresh, min_gap
        self.clock, self.wall = clock, wall
        self._explicit = services
        self._services: dict[str, None] = dict.fromkeys(services)
        self._events: deque[dict[str, Any]] = deque(maxlen=keep)
        self._held: dict[str, str] = {}
        self._said: dict[str, str] = {}
        self._consul_up: bool | None = None
        self._last_apply: float | None = None
        self._cond = threading.Condition()
        self._dirty = True
        self._soon: float | None = None  # build then, unless an event makes it due sooner
        self._clients = 0
        self._version = 0
        self._payload = b""
        self._builds = 0  # snapshots built, published or not
        self._last: dict[str, Any] | None = None  # the last one built, its time aside
        self._stopped = False

    # -- events (the pipeline's thread) ------------------------------------------------

    def __call__(self, event: Event) -> None:
        with self._cond:
            match event:
                case ChangeSeen(service, instances):
                    self._services.setdefault(service)
                    self._add("change", service, f"Consul lists {instances} instances to route")
                    # An apply (or a hold) follows within milliseconds: build after it, not beside it.
                    if self._soon is None:
                        self._soon = self.clock() + SETTLE
                    return
                case Held(service, before, after, reason, grace):
                    self._held[service] = reason
                    self._add(
                        "hold",
                        service,
                        f"held by the sanity gate: {reason} ({before} → {after} instances, up to {grace:.0f}s)",
                    )
                case Released(service, instances, waited, ended):
                    self._held.pop(service, None)
                    text = (
                        f"hold ended: {instances} instances"
                        if ended
                        else f"held change let through after {waited:.1f}s: {instances} instances"
                    )
                    self._add("release", service, text)
                case Applied(summary, outcome, seconds, in_sync, servers):
                    self._services = {**dict.fromkeys(self._explicit), **dict.fromkeys(name for name, _ in servers)}
                    if outcome != "rolled back" and in_sync:
                        self._last_apply = self.wall()
                    if outcome != "unchanged":
                        more = "" if in_sync else "; HAProxy may differ from the file, a reload follows"
                        self._add(
                            "apply", None, f"{outcome}: {summary} in {seconds * 1000:.1f} ms{more}", method=outcome
                        )
                case Timed():
                    last = self._events[-1] if self._events else None
                    if last is not None and last["kind"] == "apply" and "latency_ms" not in last:
                        last["latency_ms"] = round(event.total * 1000, 1)
                        last["text"] += f" (change → applied {event.total * 1000:.1f} ms)"
                    return  # right behind its apply, which made the snapshot due already
                case OverridesInForce(kinds, malformed):
                    in_force = ", ".join(f"{kind} {n}" for kind, n in kinds if n) or "none"
                    more = f"; {malformed} malformed, ignored" if malformed else ""
                    self._once("overrides", None, f"operator overrides in force: {in_force}{more}")
                case FailoverReached(dc, up, instances):
                    text = f"answers, lending {instances} instances" if up else "does not answer"
                    self._once(f"failover {dc}", None, f"failover datacenter {dc} {text}")
                case Failed(stage, error, kept):
                    self._add("failure", None, f"{stage} failed: {error}; {kept}")
                case ConsulRequest(_, result):
                    up, was = result != "error", self._consul_up
                    self._consul_up = up
                    if up == was:
                        return  # nothing new to show (a retry while Consul is away included)
                    if was is not None:
                        self._add("consul", None, "Consul answers again" if up else "Consul does not answer")
                case _:
                    return
            self._dirty = True
            self._cond.notify_all()

    def _once(self, what: str, service: str | None, text: str) -> None:
        """A state reported again and again (overrides, a failover datacenter): a timeline entry when it changes."""
        if self._said.get(what) != text:
            self._said[what] = text
            self._add(what.split()[0], service, text)

    def _add(self, kind: str, service: str | None, text: str, **extra: Any) -> None:
        self._events.append({"at": self.wall(), "kind": kind, "service": service, "text": text, **extra})

    # -- the snapshot thread -----------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Build and publish snapshots until ``stop`` is set (the watcher's Workers run this)."""
        built = -self.refresh
        try:
            while not stop.is_set():
                with self._cond:
                    if self._clients == 0:  # nobody looks: nothing to build (the first to look gets a fresh one)
                        self._cond.wait(0.25)
                        continue
                    now = self.clock()
                    soon = self._soon is not None and now >= self._soon
                    due = self._dirty or soon or now - built >= self.refresh
                    if not due:
                        self._cond.wait(0.25 if self._soon is None else max(0.0, min(0.25, self._soon - now)))
                        continue
                    self._dirty, self._soon = False, None
                    services, held = list(self._services), dict(self._held)
                built = self.clock()
                self._publish(self._build(services, held))
                stop.wait(self.min_gap)
        finally:
            with self._cond:
                self._stopped = True
                self._cond.notify_all()

    def _build(self, services: list[str], held: dict[str, str]) -> dict[str, Any]:
        try:
            data = self.snapshot(services, held)
        except Exception as exc:  # the dashboard must not take the watcher down; say it on the page
            log.exception("building the dashboard's snapshot failed")
            data = {"services": [], "notes": [f"building the dashboard failed: {exc}"]}
        with self._cond:
            data["timeline"] = list(self._events)
            data["held"] = dict(self._held)
            data["consul_up"] = self._consul_up if data.get("consul_error") is None else False
            data["last_apply"] = self._last_apply
        data["about"] = self.about
        data["generated_at"] = self.wall()
        return data

    def _publish(self, data: dict[str, Any]) -> None:
        """Hand a snapshot to the open pages, unless it says what the last one did (a refresh found nothing new)."""
        payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        same = {**data, "generated_at": None} == self._last
        self._last = {**data, "generated_at": None}
        with self._cond:
            self._builds += 1
            if not same:
                self._version += 1
                self._payload = payload
            self._cond.notify_all()

    # -- dashboards (the HTTP server's threads) ----------------------------------------

    def opened(self) -> None:
        with self._cond:
            self._clients += 1
            self._dirty = True  # what the new page sees first is built now
            self._cond.notify_all()

    def closed(self) -> None:
        with self._cond:
            self._clients -= 1

    @property
    def clients(self) -> int:
        return self._clients

    def next(self, seen: int, timeout: float) -> tuple[int, bytes] | None:
        """A snapshot newer than version ``seen``, waiting up to ``timeout``; None if there is none by then."""
        deadline = self.clock() + timeout
        with self._cond:
            while self._version <= seen and not self._stopped:
                left = deadline - self.clock()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return (self._version, self._payload) if self._version > seen else None

    def current(self, timeout: float = 5.0) -> bytes | None:
        """A fresh snapshot for a one-off request (``/state.json``)."""
        deadline = self.clock() + timeout
        with self._cond:
            built = self._builds
        self.opened()
        try:
            with self._cond:
                while self._builds == built and not self._stopped and self.clock() < deadline:
                    self._cond.wait(max(0.0, deadline - self.clock()))
                return self._payload if self._builds > built else None
        finally:
            self.closed()
