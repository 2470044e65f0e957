"""The watch pipeline: watches -> desired state -> render -> decide -> execute.

Worker threads (one blocking query per service, or two for the whole catalog,
and the gate's leader probe; chosen and started by :mod:`~discovery.pipeline.sources`)
are owned by :class:`~discovery.pipeline.lifecycle.Workers` and hand what they see to
one inbox (:mod:`~discovery.pipeline.inbox`); this module's loop owns everything else,
so the pipeline has a single writer.  A worker that dies stops the loop with
WorkerFailed.  Nothing is rendered until every service has been read once: a
watcher that starts while Consul is down leaves the live config alone.  The
template file is watched too, so an edit is applied without a restart.

Each pass (:mod:`~discovery.pipeline.passes`) is: render (pure), decide (pure,
:mod:`~discovery.pipeline.decide`), execute (:mod:`~discovery.pipeline.execute`); every step
emits an event (:mod:`~discovery.pipeline.events`) that the log and other observers subscribe to.
A pass that leaves HAProxy possibly different from the file, or that could not
write it, is tried again with backoff (this module) until it succeeds.
"""

from __future__ import annotations

import logging
import os
import resource
import threading
import time
from collections.abc import Callable, Mapping
from typing import cast

from ..consul.client import Catalog
from ..consul.failover_watch import DCReader
from ..consul.fit import ModeChoice
from ..consul.service_loop import ServiceLoop
from ..errors import CatalogUnavailable, DiscoveryError, OutputError
from ..haproxy.files import LiveConfig
from ..haproxy.runtime import RuntimeAPI
from .bootstrap import bootstrap
from .events import EventBus, Failed, Heartbeat, Stopping, log_event
from .execute import Executor, Outcome
from .failover import FailoverStage
from .failover_follows import FailoverFollows
from .followed import Followed
from .gatekeeper import Gatekeeper
from .inbox import STOP, WAKE, Inbox
from .lifecycle import Workers
from .live import LiveUpdater
from .once import OnceGate
from .overrides import OverrideStage
from .passes import Passes
from .quiescence import Quiescence
from .sources import fitting_mode, known_mode, start_watches
from .template_file import TemplateFile
from .watch_config import WatchConfig

log = logging.getLogger(__name__)


#: Retrying a pass that left HAProxy out of step: first after this long, doubling to RETRY_MAX.
RETRY_MIN, RETRY_MAX = 0.5, 30.0
#: The ceiling while no HAProxy answers (asking costs one failed connect): a restarted HAProxy
#: that read an older file is reloaded within this long of answering.
RETRY_MAX_UNANSWERED = 5.0


class Watcher:
    """Runs the pipeline until stopped (or once).  Subscribe to ``events`` to see every step."""

    def __init__(
        self,
        catalog: Catalog,
        config: WatchConfig,
        *,
        env: Mapping[str, str] | None = None,
        dry_run: bool = False,
        output: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalog = catalog
        self.config = config
        self.env = dict(os.environ if env is None else env)
        self.dry_run = dry_run
        self.output = output
        self.clock = clock
        self.events = EventBus()
        self.events.subscribe(log_event)
        self.stop_event = threading.Event()
        self._workers = Workers(self.stop_event, lambda: self._inbox.put(WAKE), interrupt=self._interrupt)
        # The catalog watch needs nothing of the agent: chosen now; the others when run() starts.
        self._mode: ModeChoice | None = known_mode(config)
        self._service_loop: ServiceLoop | None = None
        self._owned: list[tuple[str, Callable[[], None]]] = []
        self._followed = Followed(config.services, config.discover)
        self._gate = Gatekeeper(config.gate, self._followed.views, self.events.emit, clock)
        self._template = TemplateFile(config.template, config.template_poll, clock)
        self._retry_at: float | None = None
        self._retry_delay = RETRY_MIN
        self._tick_error: str | None = None  # the last housekeeping failure reported
        updater = LiveUpdater(RuntimeAPI(config.runtime_socket), config.drain_grace) if config.runtime_socket else None
        self._failover = FailoverStage(config.failover_dcs, config.gate, self.events.emit, clock)
        self._overrides = OverrideStage(None if dry_run else updater, self.events.emit)
        # A dry run gets no executor: nothing that could write a file exists.
        self.executor = (
            None
            if dry_run
            else Executor(
                LiveConfig(config.output),
                config.validator,
                config.reloader,
                self.stop_event,
                config.retry,
                updater,
                self.events.emit,
            )
        )
        self._inbox = Inbox(self._followed, self._gate, self._failover, self._overrides, self.events, clock)
        self._failover_follows = FailoverFollows(
            cast(DCReader, catalog), self._failover, self._inbox.put, self._workers, config.timing
        )
        self._passes = Passes(
            self._template,
            config.values,
            self.env,
            self._failover,
            self._overrides,
            self.executor,
            self.events.emit,
            output,
            self._schedule_retry,
            clock,
        )

    def bootstrap(self) -> bool:
        """See :func:`bootstrap`; a dry run prints the bootstrap config instead of writing it."""
        return bootstrap(self.config, self.env, self.output if self.dry_run else None)

    def own(self, name: str, target: Callable[[], None]) -> None:
        """Run ``target`` as one of the watcher's worker threads (started with the watches, stopped
        and joined with them; it must return once ``stop_event`` is set, and its failure stops the loop)."""
        self._owned.append((name, target))

    def stop(self) -> None:
        """Ask the loop to end; safe from any thread (a signal handler uses a SignalRelay)."""
        self._inbox.put(STOP)

    @property
    def blocking_queries(self) -> int:
        """How many blocking queries the watch keeps open against Consul (0 before it starts)."""
        return self._mode.blocking_queries if self._mode else 0

    def _interrupt(self) -> None:
        self.catalog.interrupt()
        if self._service_loop is not None:
            self._service_loop.stop()

    def choose_mode(self) -> ModeChoice:
        """The watch that fits (:func:`~discovery.consul.fit.choose_mode`; logged with its reason at start).
        Raises ConfigError for ``--watch-mode service`` beyond the agent's connection limit."""
        return fitting_mode(self.catalog, self.config, self.clock, self.stop_event)

    def _start_workers(self) -> None:
        for name, target in self._owned:
            self._workers.start(name, target)
        self._mode = self._mode or self.choose_mode()
        self._service_loop = start_watches(
            self.catalog,
            self.config,
            self._mode,
            self._inbox.put,
            self.stop_event,
            self._workers,
            self._gate.probe_wanted,
        )
        self._failover_follows.sync(self._followed.views)

    def log_stats(self) -> None:
        """One line an operator (or a benchmark) can read: load on Consul and on this process."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        stale = self.catalog.stale_reasks
        reasked = f" ({stale} stale answers asked again)" if stale else ""
        log.info(
            "stats: %d requests to Consul%s, %d blocking queries open, cpu %.2fs, peak rss %.1f MB",
            self.catalog.requests,
            reasked,
            self.blocking_queries,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024,
        )

    def run(self, once: bool = False) -> Outcome | None:
        """Follow Consul until stopped; with ``once``, return after the first pass.

        Raises WorkerFailed when a worker thread dies; with ``once``, the pass's error.
        """
        timer = Quiescence(*self.config.wait)
        started = self.clock()
        self._mode = self._mode or self.choose_mode()  # before anything is written: a refused mode is bad input
        if self.executor is not None:
            self.executor.prepare()
            if not once:  # a restarted watcher protects what HAProxy serves (a one-off render is asked for)
                self._gate.remember(self._failover.local_only(self.executor.running_servers()))
        once_gate = self._once_gate() if once else None
        self._start_workers()
        last: Outcome | None = None
        try:
            while not self.stop_event.is_set():
                self.events.emit(Heartbeat(self.clock()))
                self._workers.check()
                if once and not self._followed.complete and self.clock() - started > self.config.once_timeout:
                    raise CatalogUnavailable(
                        f"Consul did not answer for every service within {self.config.once_timeout:.0f}s"
                    )
                if not self._receive(timer):
                    break
                if self._gate.release_expired() | self._failover.release_expired() | self._inbox.settle_kept():
                    timer.change(self.clock())
                self._failover_follows.sync(self._followed.views)  # services discovered or gone
                if self._template.changed() and self._followed.complete:
                    timer.change(self.clock())
                if self._overrides.pending and not timer.pending:
                    timer.change(self.clock())
                if self._retry_at is not None and self.clock() >= self._retry_at and not timer.pending:
                    timer.change(self.clock())
                if self._followed.complete and (once_gate.ready() if once_gate else timer.due(self.clock())):
                    timeline = self._inbox.timeline()
                    state = self._followed.state()
                    last, error = self._passes.run(state, timeline)
                    timer.flushed(self.clock(), reloaded=last in (Outcome.RELOADED, Outcome.ROLLED_BACK))
                    if once:
                        if error is not None:
                            raise error
                        return last
                if not timer.pending and self.executor is not None:
                    self._tick()
        finally:
            self.events.emit(Stopping())
            if self.executor is not None:
                try:
                    self.executor.save_last_good()  # or the next start would reload for nothing
                except DiscoveryError as exc:
                    log.error("%s", exc)
            stuck = self._workers.stop_and_join()
            if stuck:
                log.debug("threads still in a long poll at exit: %s", ", ".join(stuck))
        return last

    def _once_gate(self) -> OnceGate:
        """What ``--once`` waits for besides the services: the overrides' and failover datacenters' first answers."""
        overrides = self._overrides if self.config.overrides_prefix else None
        gate = OnceGate(self._followed, overrides, self._failover, self.clock, self.config.once_timeout)
        self.events.subscribe(gate.on_event)
        return gate

    def _tick(self) -> None:
        """The executor's idle-time housekeeping; a file it cannot write (a full disk) is reported
        once and tried again on later turns: HAProxy already runs the config, the loop goes on."""
        assert self.executor is not None
        try:
            self.executor.tick()
        except OutputError as exc:
            if str(exc) != self._tick_error:
                self.events.emit(Failed("save", exc, "HAProxy runs the config already; saving it again when idle"))
            self._tick_error = str(exc)
        else:
            self._tick_error = None
        if not self.executor.in_sync and self._retry_at is None:
            self._schedule_retry(None)  # a drained server HAProxy would not delete: reload

    def _receive(self, timer: Quiescence) -> bool:
        """Take messages off the inbox until something is due; False when asked to stop."""
        now = self.clock()
        wakeups = [d for d in (timer.deadline(), self._retry_at, self._gate.next_expiry()) if d is not None]
        timeout = min([self.config.template_poll, *(max(0.0, d - now) for d in wakeups)])
        return self._inbox.receive(timer, timeout)

    def _schedule_retry(self, error: DiscoveryError | None) -> None:
        """Out of step or unwritten: try the pass again with backoff; otherwise wait for the next change."""
        out_of_step = self.executor is not None and not self.executor.in_sync
        if not (out_of_step or isinstance(error, OutputError)):
            self._retry_at, self._retry_delay = None, RETRY_MIN
            return
        awaiting = self.executor is not None and self.executor.awaiting_haproxy
        ceiling = RETRY_MAX_UNANSWERED if awaiting else RETRY_MAX
        self._retry_delay = min(ceiling, self._retry_delay)
        now = self.clock()
        if self._retry_at is not None and now < self._retry_at <= now + self._retry_delay:
            return  # a retry is due already: a pass that a new change started neither moves nor backs it off
        self._retry_at = now + self._retry_delay
        self._retry_delay = min(ceiling, self._retry_delay * 2)
