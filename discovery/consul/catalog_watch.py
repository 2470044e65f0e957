"""Follow many services with two blocking queries instead of one per service.

One blocking query per service does not scale: Consul limits HTTP connections
per client address (200 by default), and consul-template's users know the N+1
pattern well.  This watch follows two endpoints for the whole datacenter:

- ``/v1/health/state/any``: every check; a registration or deregistration with a
  check, a status change, or a node failing its ``serfHealth`` changes it;
- ``/v1/catalog/services``: service names and tags; it moves on every
  registration, including the rare ones without a check.

Answers are compared with the last ones to find the watched services that changed,
and only those are read again (one non-blocking ``/v1/health/service/NAME`` each).  A
registration with a check moves both endpoints at the same Raft index.  When the service
index moves and no answer says why, one tiny request asks where the checks' index stands
(the index of ``/v1/health/state/warning``, whose body is only the checks in warning): at or
past it, a check moved too and the big checks answer is on its way (seconds at 50,000
checks), so it is waited for, up to ``explain_within``; below it, nothing says which service
changed (an instance without checks, or re-registered with a new address but the same checks
and tags), so every watched service is read again at once: correct, and rare.  The fan-out
is pure (:func:`dirty_services`); the rest is two :class:`~discovery.watch.Follow` loops and
one reader.

With ``discover``, the set of services is not fixed: every catalog list decides it
(:mod:`discovery.consul.discover`); a service that joins is read at once, one that leaves
is announced with a :class:`~discovery.consul.discover.Gone`.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import CatalogError
from ..state.convert import convert
from ..state.model import Service
from .check_diff import changed_checks
from .client import Catalog
from .discover import Gone, Listed, discovered, gone_reason
from .watch import (
    HEALTH_SERVICE,
    ConsulRequest,
    Follow,
    Report,
    Retry,
    SkipLog,
    Update,
    WatchTiming,
    changed_view,
    no_report,
)

log = logging.getLogger(__name__)

#: Reads of changed services at once (a first pass reads every service; Consul allows 200 connections per client).
READERS = 8
#: Seconds to wait for the follower threads when stopping (the owner's interrupt ends their long polls).
JOIN_WITHIN = 2.0
_FAILED = "failed"  # a trigger: a follower thread ended with an exception

CheckKey = tuple[str, str]  # (node, check ID)
CheckValue = tuple[str, str, str, tuple[str, ...]]  # (service name, service ID, status, tags)


def check_digest(checks: Iterable[Any]) -> dict[CheckKey, CheckValue]:
    """What matters of ``/v1/health/state/any``: who has which check in which state (not its output)."""
    digest: dict[CheckKey, CheckValue] = {}
    for chk in checks:
        if not isinstance(chk, Mapping):
            continue
        key = (str(chk.get("Node", "")), str(chk.get("CheckID", "")))
        digest[key] = (
            str(chk.get("ServiceName") or ""),
            str(chk.get("ServiceID") or ""),
            str(chk.get("Status", "")),
            tuple(sorted(str(t) for t in chk.get("ServiceTags") or ())),
        )
    return digest


def dirty_services(
    old: Mapping[CheckKey, CheckValue] | None,
    new: Mapping[CheckKey, CheckValue],
    watched: Iterable[str],
    nodes: Mapping[str, set[str]],
) -> set[str]:
    """The watched services a change of checks touches.  ``nodes`` maps a node to the watched
    services with instances on it (a node check, like ``serfHealth``, affects all of them)."""
    watched = set(watched)
    if old is None:
        return watched
    touched: set[str] = set()
    for key in old.keys() ^ new.keys() | {k for k in old.keys() & new.keys() if old[k] != new[k]}:
        value = new.get(key) or old[key]
        service = value[0]
        if service:
            touched.add(service)
        else:
            touched |= nodes.get(key[0], set())
    return touched & watched


def dirty_from_service_list(
    old: Mapping[str, Sequence[str]] | None, new: Mapping[str, Sequence[str]], watched: Iterable[str]
) -> set[str]:
    """Watched services that appeared, disappeared or changed tags in ``/v1/catalog/services``."""
    watched = set(watched)
    if old is None:
        return watched
    return {
        name
        for name in watched
        if sorted(old.get(name) or ()) != sorted(new.get(name) or ()) or (name in old) != (name in new)
    }


class CatalogWatch:
    """Watched services through two blocking queries; changed services go to ``on_update``
    (with ``discover``, also :class:`Listed` and :class:`Gone` as the followed set changes)."""

    def __init__(
        self,
        catalog: Catalog,
        services: Sequence[str],
        on_update: Callable[[Update | Listed | Gone], None],
        stop: threading.Event,
        *,
        tag: str | None = None,
        timing: WatchTiming = WatchTiming(),  # noqa: B008  (frozen: a shared default is safe)
        clock: Callable[[], float] = time.monotonic,
        gather: float = 0.0,
        explain_within: float = 10.0,
        report: Report = no_report,
        discover: bool = False,
    ) -> None:
        self.catalog, self.on_update, self.stop, self.tag, self.timing = catalog, on_update, stop, tag, timing
        self.explicit = self.services = tuple(services)
        self.discover = discover
        self._refused: set[str] = set()  # route-tagged names refused, each logged once
        self.clock, self.explain_within = clock, explain_within
        # Waiting ``gather`` to read both endpoints' answers together is not needed for correctness (an
        # unexplained service index waits for the checks): by default no change waits on a timer.
        self.gather = gather
        self._checks_index = 0
        self._unexplained: tuple[int, float] | None = None  # (service index, give up at)
        self._probe = False  # ask where the checks' index stands, once per unexplained move
        self._waiting: set[str] = set()  # services to read once both endpoints have answered
        self._triggers: queue.Queue[tuple[str, int, Any, float]] = queue.Queue()
        self._checks_text: str | None = None
        self._service_list: Mapping[str, Sequence[str]] | None = None
        self._current: dict[str, Service] = {}
        self._last: dict[str, Update] = {}
        self._skips: dict[str, SkipLog] = {}
        self.report = report
        self._retry = Retry("catalog fan-out", stop, timing, HEALTH_SERVICE, report)

    def _follow(self, name: str, fetch: Callable[[int, float], tuple[int, Any]], endpoint: str) -> threading.Thread:
        """A thread following one endpoint: its answers, or the exception that ended it (which stops
        :meth:`run` instead of leaving the watch deaf), go to the trigger queue."""
        follow = Follow(
            name,
            fetch,
            lambda index, body: self._triggers.put((name, index, body, self.clock())),
            self.stop,
            self.timing,
            self.clock,
            endpoint,
            self.report,
        )

        def body() -> None:
            try:
                follow.run()
            except BaseException as exc:
                self._triggers.put((_FAILED, 0, (name, exc), self.clock()))

        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        """Follow both endpoints and read what changed, until ``stop``; the two follower threads are
        joined when stopping.  Raises if a follower failed."""
        catalog = self.catalog
        followers = [
            self._follow(
                "health.state(any)", lambda i, w: catalog.health_state_text(index=i, wait=w), "/v1/health/state"
            ),
            self._follow(
                "catalog.services", lambda i, w: catalog.catalog_services(index=i, wait=w), "/v1/catalog/services"
            ),
        ]
        try:
            self._loop()
        finally:
            if self.stop.is_set():  # (after a failure, the owner stops everything once it hears of it)
                deadline = time.monotonic() + JOIN_WITHIN
                for thread in followers:
                    thread.join(max(0.0, deadline - time.monotonic()))

    def _loop(self) -> None:
        while not self.stop.is_set():
            timeout = 0.5 if self._unexplained is None else max(0.0, self._unexplained[1] - self.clock())
            batch = []
            try:
                batch.append(self._triggers.get(timeout=timeout))
                if self.gather > 0:
                    self.stop.wait(self.gather)
                while not self._triggers.empty():
                    batch.append(self._triggers.get_nowait())
            except queue.Empty:
                pass
            try:
                self._handle(batch)
            except CatalogError:
                return  # only when stopping: the reads retry until then

    def _nodes(self) -> dict[str, set[str]]:
        nodes: dict[str, set[str]] = {}
        for service in self._current.values():
            for inst in service.instances:
                nodes.setdefault(inst.node, set()).add(service.name)
        return nodes

    def _handle(self, batch: list[tuple[str, int, Any, float]]) -> None:
        dirty: set[str] = set()
        for name, index, body, _at in batch:
            if name == _FAILED:
                follower, exc = body
                raise RuntimeError(f"{follower} stopped: {type(exc).__name__}: {exc}") from exc
            if name == "health.state(any)":
                dirty |= self._checks_changed(body)
                self._checks_index = max(self._checks_index, index)
            else:
                before = self.services  # a service that leaves explains the change too
                joined = self._rediscover(body) if self.discover else set()
                found = dirty_from_service_list(self._service_list, body, before) | joined
                if not found and self._service_list is not None and self._checks_index < index:
                    self._unexplained = (index, self.clock() + self.explain_within)
                    self._probe = True
                self._service_list = dict(body)
                dirty |= found
        dirty &= set(self.services)  # a service that left in this batch is not read
        if self._unexplained is not None:
            index, give_up = self._unexplained
            if self._checks_index >= index:
                self._unexplained = None  # a check moved at the same index: the fan-out above covered it
            elif self._probe:
                self._probe = False
                if self._retry(self.catalog.checks_index) < index:
                    log.info("catalog moved at index %d and no check did: reading every service", index)
                    self._unexplained = None
                    dirty = set(self.services)
            elif self.clock() >= give_up:
                log.info("catalog moved at index %d without a check saying where: reading every service", index)
                self._unexplained = None
                dirty = set(self.services)
        # Nothing is read before both endpoints answered once: reads made after both first answers
        # cover them both (and a first pass reads every service once, not once per endpoint).
        self._waiting |= dirty
        if self._checks_text is None or self._service_list is None:
            return
        dirty, self._waiting = self._waiting & set(self.services), set()
        # A change's budget starts when the first answer that shows it arrived, not at the re-read.
        self._read_all(sorted(dirty), min((at for *_, at in batch), default=None))

    def _checks_changed(self, text: str) -> set[str]:
        """The followed services a new answer of ``/v1/health/state/any`` touches; only the checks
        where it differs from the last one are decoded (:mod:`~discovery.consul.check_diff`)."""
        old, self._checks_text = self._checks_text, text
        if old is None:
            return set(self.services)
        region = changed_checks(old, text)
        if region is None:
            try:
                region = json.loads(old), json.loads(text)
            except ValueError:
                log.warning("health.state(any): an answer that is not JSON: reading every service")
                return set(self.services)
        before, after = check_digest(region[0]), check_digest(region[1])
        # Which services sit on which node matters only for a node check (serfHealth): 10,000 instances
        # are not walked for a service's check.
        moved = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
        node_check = any(not (before.get(key) or after[key])[0] for key in moved)
        return dirty_services(before, after, self.services, self._nodes() if node_check else {})

    def _rediscover(self, service_list: Mapping[str, Sequence[str]]) -> set[str]:
        """Apply a catalog list to the followed set; announce it; return the services that joined."""
        found = discovered(service_list, self.explicit, tag=self.tag)
        for name, reason in sorted(found.refused.items()):
            if name not in self._refused:
                log.warning("discover: service skipped: %s", reason)
        self._refused = set(found.refused)
        first, before = self._service_list is None, set(self.services)
        self.services = found.followed
        for name in sorted(before - set(found.followed)):
            reason = gone_reason(name, service_list, self.tag)
            log.info("discover: %s %s: no longer followed", name, reason)
            self._last.pop(name, None)  # if it comes back, its first read is handed on, changed or not
            self._current.pop(name, None)
            self._skips.pop(name, None)
            self.on_update(Gone(name, reason))
        joined = set(found.followed) - before
        if joined and not first:
            log.info("discover: following %s (route tags)", ", ".join(sorted(joined)))
        if first or before != set(found.followed):
            self.on_update(Listed(found.followed))
        return joined

    def _read_all(self, names: list[str], since: float | None) -> None:
        """Read the services (in parallel when there are several: the first pass reads them all,
        2,500 one after the other took a minute) and hand on what changed, in order; ``since``
        dates the change (the first answer that showed it), else each read's answer does."""
        if len(names) <= 1:
            for name in names:
                self._apply(name, *self._fetch(name), since)
            return
        with ThreadPoolExecutor(min(READERS, len(names)), thread_name_prefix="catalog-read") as pool:
            for name, fetched in zip(names, pool.map(self._fetch, names), strict=True):
                self._apply(name, *fetched, since)

    def _fetch(self, name: str) -> tuple[int, Any, float]:
        index, entries = self._retry(
            self.catalog.health_service, name, tag=self.tag, index=0, wait=self.timing.wait, passing=False
        )
        return index, entries, time.monotonic()

    def _apply(self, name: str, index: int, entries: Any, fetched_at: float, since: float | None) -> None:
        conversion = convert(name, list(entries), passing_only=True)
        self._skips.setdefault(name, SkipLog(f"health.service({name})")).report(conversion)
        update = changed_view(self._last.get(name), conversion, index, since or fetched_at)
        self.report(ConsulRequest(HEALTH_SERVICE, "unchanged" if update is None else "changed"))
        if update is None:
            return
        self._last[name] = update
        if self._current.get(name) != conversion.service:
            self._current[name] = conversion.service
            log.info(
                "health.service(%s|passing): change seen at index %d: %d instances",
                name,
                index,
                len(conversion.service.instances),
            )
        self.on_update(update)
