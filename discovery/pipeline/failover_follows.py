"""The watches of the failover datacenters, one per followed service and datacenter, started and
stopped as the followed set changes.

``--service`` names are followed from the start; with ``--discover``, a service's watches start
when the catalog lists it and stop when it leaves the followed set (its view dropped).  Each
watch is a worker owned by :class:`~discovery.pipeline.lifecycle.Workers`, with a stop of its
own: set when its service leaves (the thread ends after its long poll in flight) and when the
watcher stops (then every long poll is interrupted and every thread joined).  A stopped watch
posts nothing more, and :meth:`FailoverStage.forget <discovery.pipeline.failover.FailoverStage.forget>`
drops what it had answered.  Only the pipeline's thread calls :meth:`FailoverFollows.sync`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection

from ..consul.failover_watch import DCReader, FailoverReach, FailoverUpdate, FailoverWatch
from ..consul.fit import polls_allowed
from ..consul.watch import WatchTiming
from .failover import FailoverStage
from .lifecycle import Workers

log = logging.getLogger(__name__)

#: Consul's default connection limit per client address (``http_max_conns_per_client``): every
#: failover watch is a long poll of its own, so many discovered services can reach it (warned once).
AGENT_DEFAULT_LIMIT = 200


class FailoverFollows:
    def __init__(
        self,
        reader: DCReader,
        stage: FailoverStage,
        post: Callable[[FailoverUpdate | FailoverReach], None],
        workers: Workers,
        timing: WatchTiming,
    ) -> None:
        self.reader = reader
        self.stage = stage
        self.post = post
        self.workers = workers
        self.timing = timing
        self._stops: dict[str, threading.Event] = {}  # service -> the stop of its watches
        self._warned = False

    @property
    def services(self) -> frozenset[str]:
        return frozenset(self._stops)

    def sync(self, followed: Collection[str]) -> None:
        """Start the watches of services newly ``followed``, stop those of services that left."""
        if not self.stage.dcs or (len(followed) == len(self._stops) and all(n in self._stops for n in followed)):
            return
        for name in sorted(set(self._stops) - set(followed)):
            self._stops.pop(name).set()
            self.stage.forget(name)
            log.info("failover: %s no longer followed in %s", name, ", ".join(self.stage.dcs))
        for name in sorted(set(followed) - set(self._stops)):
            self._start(name)
        polls = len(self._stops) * len(self.stage.dcs)
        if polls > polls_allowed(AGENT_DEFAULT_LIMIT) and not self._warned:
            log.warning(
                "failover: %d long polls to other datacenters (%d services x %d datacenters), beyond what an "
                "agent allows one client by default (http_max_conns_per_client %d, with headroom): raise it",
                polls,
                len(self._stops),
                len(self.stage.dcs),
                AGENT_DEFAULT_LIMIT,
            )
            self._warned = True

    def _start(self, name: str) -> None:
        stop = self._stops[name] = threading.Event()
        self.stage.follow(name)

        def post(message: FailoverUpdate | FailoverReach) -> None:
            if not stop.is_set():  # an answer that arrives after the service left is not handed on
                self.post(message)

        for dc in self.stage.dcs:
            watch = FailoverWatch(self.reader, name, dc, post, stop, timing=self.timing)
            self.workers.start(f"watch-{name}-{dc}", watch.run, stop=stop)
