"""The watch pipeline: watches -> desired state -> render -> validate -> apply.

One thread per watched service runs a blocking query (:mod:`discovery.watch`)
and hands changes to a queue; this module's loop owns everything else, so the
pipeline has a single writer.  Nothing is rendered until every service has been
read once: a watcher that starts while Consul is down leaves the live config
alone.  The template file is watched too, so an edit is applied without a restart.
"""

from __future__ import annotations

import logging
import os
import queue
import resource
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..haproxy.files import LiveConfig
from .execute import Applier, Outcome, ReloadRetry
from ..consul.client import Catalog
from ..consul.catalog_watch import CatalogWatch
from ..errors import CatalogError, CatalogUnavailable, DiscoveryError, TemplateError, ValidationError
from ..state.gate import GatePolicy, Hold, decide, release, suspect
from ..haproxy.master import Reloader
from ..haproxy.runtime import RuntimeAPI
from .live import LiveUpdater
from ..state.model import DesiredState, Service
from .quiescence import Quiescence
from ..haproxy.render import Renderer
from ..haproxy.validate import Validator
from ..consul.watch import ServiceWatch, Update, WatchTiming

log = logging.getLogger(__name__)

#: In ``auto`` mode, more services than this are followed through the catalog-wide watch.
CATALOG_ABOVE = 8


@dataclass(frozen=True)
class WatchConfig:
    """Everything ``disco watch`` was asked to do."""

    services: tuple[str, ...]
    template: Path
    output: Path
    tag: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)
    wait: tuple[float, float] = (0.01, 1.0)
    validator: Validator | None = Validator()
    reloader: Reloader | None = None
    timing: WatchTiming = WatchTiming()
    retry: ReloadRetry = ReloadRetry()
    #: HAProxy's admin socket: server-only changes go through the runtime API, without a reload.
    runtime_socket: Path | None = None
    #: How long a removed server may drain before it is deleted.
    drain_grace: float = 10.0
    #: ``service``: one blocking query per service; ``catalog``: two for the whole datacenter
    #: (:mod:`discovery.catalog_watch`); ``auto``: catalog above ``CATALOG_ABOVE`` services.
    watch_mode: str = "auto"
    #: The sanity gate for changes that take away most of a service (:mod:`discovery.gate`).
    gate: GatePolicy = GatePolicy()
    #: With ``once``: give up when Consul has not answered for every service by then.
    once_timeout: float = 30.0
    template_poll: float = 1.0


@dataclass(frozen=True)
class Applied:
    """What one pass of the pipeline did, for logs, tests and benchmarks."""

    state: DesiredState
    outcome: Outcome | None
    text: str
    at: float
    error: DiscoveryError | None = None


class Watcher:
    """Runs the pipeline until stopped (or once).  ``on_applied`` sees every pass."""

    def __init__(self, catalog: Catalog, config: WatchConfig, *, env: Mapping[str, str] | None = None,
                 dry_run: bool = False, output: Callable[[str], None] = print,
                 on_applied: Callable[[Applied], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.catalog = catalog
        self.config = config
        self.env = dict(os.environ if env is None else env)
        self.dry_run = dry_run
        self.output = output
        self.on_applied = on_applied
        self.clock = clock
        self.stop_event = threading.Event()
        self._queue: queue.Queue[Update | None] = queue.Queue()
        self._holds: dict[str, Hold] = {}
        self._renderer = Renderer(config.template)
        self._template_mtime = _mtime(config.template)
        self._live = LiveConfig(config.output)
        self._live.adopt_running()
        updater = LiveUpdater(RuntimeAPI(config.runtime_socket), config.drain_grace) if config.runtime_socket else None
        self._applier = Applier(self._live, config.validator, config.reloader, self.stop_event, config.retry,
                                updater)

    def bootstrap(self) -> bool:
        """See :func:`bootstrap`."""
        return bootstrap(self.config, self.env)

    def stop(self) -> None:
        """Ask the loop to end; safe from signal handlers and other threads."""
        self.stop_event.set()
        self._queue.put(None)

    @property
    def blocking_queries(self) -> int:
        """How many blocking queries the watch keeps open against Consul."""
        return 2 if self._catalog_mode else len(self.config.services)

    @property
    def _catalog_mode(self) -> bool:
        mode = self.config.watch_mode
        return mode == "catalog" or (mode == "auto" and len(self.config.services) > CATALOG_ABOVE)

    def _start_watches(self) -> None:
        watches: list[tuple[str, Callable[[], None]]]
        if self._catalog_mode:
            watch = CatalogWatch(self.catalog, self.config.services, self._queue.put, self.stop_event,
                                 tag=self.config.tag, timing=self.config.timing)
            watches = [("watch-catalog", watch.run)]
        else:
            watches = [(f"watch-{name}", ServiceWatch(self.catalog, name, self._queue.put, self.stop_event,
                                                      tag=self.config.tag, timing=self.config.timing).run)
                       for name in self.config.services]
        log.info("watching %d services with %d blocking queries", len(self.config.services), self.blocking_queries)
        for name, target in watches:
            threading.Thread(target=target, name=name, daemon=True).start()

    def log_stats(self) -> None:
        """One line an operator (or a benchmark) can read: load on Consul and on this process."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        log.info("stats: %d requests to Consul, %d blocking queries open, cpu %.2fs, peak rss %.1f MB",
                 getattr(self.catalog, "requests", -1), self.blocking_queries, usage.ru_utime + usage.ru_stime,
                 usage.ru_maxrss / 1024)

    def run(self, once: bool = False) -> Applied | None:
        """Follow Consul until stopped; with ``once``, return after the first pass."""
        services: dict[str, Service | None] = dict.fromkeys(self.config.services)
        timer = Quiescence(*self.config.wait)
        started = self.clock()
        self._start_watches()
        last: Applied | None = None
        try:
            while not self.stop_event.is_set():
                complete = all(s is not None for s in services.values())
                if once and not complete and self.clock() - started > self.config.once_timeout:
                    raise CatalogUnavailable(f"Consul did not answer for every service within "
                                             f"{self.config.once_timeout:.0f}s")
                self._receive(services, timer)
                self._release_holds(services, timer)
                if not timer.pending:
                    self._settle()
                self._applier.tick()
                if self._template_changed() and all(s is not None for s in services.values()):
                    timer.change(self.clock())
                complete = all(s is not None for s in services.values())
                if complete and (once or timer.due(self.clock())):
                    state = DesiredState(tuple(s for s in services.values() if s is not None))
                    last = self._pass(state)
                    timer.flushed(self.clock(), reloaded=last.outcome in (Outcome.RELOADED, Outcome.ROLLED_BACK))
                    if once:
                        self._applier.settle()
                        if last.error is not None:
                            raise last.error
                        return last
        finally:
            self.stop_event.set()
        return last

    def _receive(self, services: dict[str, Service | None], timer: Quiescence) -> None:
        """Take updates off the queue until one is due or a poll interval passes."""
        deadline = timer.deadline()
        timeout = self.config.template_poll if deadline is None else max(0.0, deadline - self.clock())
        try:
            update = self._queue.get(timeout=min(timeout, self.config.template_poll))
        except queue.Empty:
            return
        while update is not None:
            if self._admit(services, update.service):
                timer.change(self.clock())
            try:
                update = self._queue.get_nowait()
            except queue.Empty:
                break

    def _consul_healthy(self) -> bool:
        """Does Consul have a leader?  Asked only when a change looks suspect."""
        try:
            return bool(self.catalog.leader())
        except (CatalogError, AttributeError):
            return False

    def _admit(self, services: dict[str, Service | None], proposed: Service) -> bool:
        """Take ``proposed`` unless the sanity gate holds it; return whether anything changed."""
        name, policy = proposed.name, self.config.gate
        previous = services.get(name)
        held = self._holds.pop(name, None)
        reason = None
        if suspect(previous, proposed, policy.share):
            reason = decide(policy, previous, proposed, self._consul_healthy())
        if reason is not None:
            self._holds[name] = Hold(proposed, held.since if held else self.clock(), reason)
            if held is None:
                log.warning("holding the change of %s: %d -> %d instances (%s); until that changes or %.0fs pass",
                            name, len(previous.instances) if previous else 0, len(proposed.instances), reason,
                            policy.grace)
            return False
        if held is not None:
            log.info("hold on %s ended: %d instances now", name, len(proposed.instances))
        services[name] = proposed
        return True

    def _release_holds(self, services: dict[str, Service | None], timer: Quiescence) -> None:
        if not self._holds:
            return
        healthy = self._consul_healthy()
        for name, hold in list(self._holds.items()):
            if release(self.config.gate, hold, self.clock(), healthy):
                del self._holds[name]
                services[name] = hold.proposed
                timer.change(self.clock())
                log.warning("released the held change of %s after %.1fs: %d instances", name,
                            self.clock() - hold.since, len(hold.proposed.instances))

    def _settle(self) -> None:
        try:
            self._applier.settle()
        except DiscoveryError as exc:
            log.error("%s; the last good config was restored", exc)

    def _template_changed(self) -> bool:
        mtime = _mtime(self.config.template)
        if mtime == self._template_mtime:
            return False
        self._template_mtime = mtime
        try:
            self._renderer = Renderer(self.config.template)
        except TemplateError as exc:
            log.error("template edit not applied: %s", exc)
            return False
        log.info("template %s changed", self.config.template)
        return True

    def _pass(self, state: DesiredState) -> Applied:
        """Render, validate and apply one state; errors are logged, the live config kept."""
        outcome: Outcome | None = None
        error: DiscoveryError | None = None
        text = ""
        try:
            text = self._renderer.render(state, self.config.values, self.env)
            log.info("rendered %s (%d bytes)", state.summary(), len(text))
            if self.dry_run:
                self.output(text)
            else:
                outcome = self._applier.apply(text)
                log.info("applied %s: %s", state.summary(), outcome.value)
        except DiscoveryError as exc:
            error = exc
            log.error("%s; the live config is unchanged", exc)
            if isinstance(exc, ValidationError):
                for line in exc.details.splitlines()[1:]:
                    log.error("  %s", line)
        applied = Applied(state, outcome, text, self.clock(), error)
        if self.on_applied is not None:
            self.on_applied(applied)
        return applied


def bootstrap(config: WatchConfig, env: Mapping[str, str] | None = None) -> bool:
    """Write a validated config with every service and no instances, if there is no config yet.

    For process supervisors that start HAProxy beside the watcher: HAProxy needs a
    file before Consul has answered.  Needs no Consul.  Returns whether a file was written.
    """
    live = LiveConfig(config.output)
    if live.read() is not None:
        return False
    empty = DesiredState(tuple(Service(name) for name in config.services))
    text = Renderer(config.template).render(empty, config.values, dict(os.environ if env is None else env))
    live.install(text, config.validator)
    live.keep_as_last_good(text)
    log.info("bootstrap config written to %s (%s)", config.output, empty.summary())
    return True


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return None
