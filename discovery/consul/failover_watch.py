"""Follow a service in a failover datacenter: one blocking query on ``/v1/health/service/NAME?dc=DC``.

The answer is checked as the local ones are (:func:`discovery.state.convert.convert`, passing
instances only) and handed to the pipeline's inbox as a :class:`FailoverUpdate`.  Whether the
datacenter answers (the WAN link) is handed on as a :class:`FailoverReach` each time it changes:
while it does not, the loop retries with backoff and the pipeline keeps the last instances it
had (an error never becomes an empty answer); the first query after a failure does not block,
so a datacenter that comes back with a lower index (restored, rebuilt) is seen at once.
:func:`check_datacenters` is the start-up check that every datacenter asked for exists.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import CatalogError, ConfigError
from ..state.convert import convert
from ..state.model import Service
from .watch import ConsulRequest, Follow, WatchTiming

log = logging.getLogger(__name__)
ENDPOINT = "/v1/health/service?dc"


class DCReader(Protocol):
    def health_service_dc(self, service: str, dc: str, *, index: int, wait: float) -> tuple[int, Any]: ...

    def datacenters(self) -> list[str]: ...


@dataclass(frozen=True)
class FailoverUpdate:
    """The passing instances of ``service`` in datacenter ``dc`` (not yet renamed as backups)."""

    service: Service
    dc: str
    index: int


@dataclass(frozen=True)
class FailoverReach:
    """Whether datacenter ``dc`` answers the query for ``service``; ``error`` when it does not."""

    service: str
    dc: str
    ok: bool
    error: str = ""


class FailoverWatch:
    """One service in one other datacenter, followed until stopped."""

    def __init__(
        self,
        reader: DCReader,
        service: str,
        dc: str,
        post: Callable[[FailoverUpdate | FailoverReach], None],
        stop: threading.Event,
        *,
        timing: WatchTiming | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service, self.dc, self.post = service, dc, post
        self._last: Service | None = None
        self._ok: bool | None = None
        self._resync = False

        def fetch(index: int, wait: float) -> tuple[int, Any]:
            # After a failure, ask without blocking first: the datacenter may come back restored or
            # rebuilt with a lower index, and a blocking query on the old one would wait out its wait.
            if self._resync:
                self._resync, index = False, 0
            return reader.health_service_dc(service, dc, index=index, wait=wait)

        identity = f"health.service({service}|passing|dc={dc})"
        self.follow = Follow(
            identity, fetch, self._answer, stop, timing or WatchTiming(), clock, ENDPOINT, self._report
        )

    def _report(self, request: ConsulRequest) -> None:
        # Not handed on as a ConsulRequest: the local Consul's health (disco_consul_up) is another matter.
        ok = request.result != "error"
        self._resync = self._resync or not ok
        if ok == self._ok:
            return
        before, self._ok = self._ok, ok
        self.post(FailoverReach(self.service, self.dc, ok, "" if ok else "no answer (WAN link or its servers down?)"))
        if not ok:
            log.warning(
                "failover datacenter %s does not answer for %s; its last known instances are kept",
                self.dc,
                self.service,
            )
        elif before is False:
            log.info("failover datacenter %s answers again for %s", self.dc, self.service)

    def _answer(self, index: int, entries: Any) -> bool:
        service = convert(self.service, list(entries), passing_only=True).service
        if service == self._last:
            return False
        log.info("%s: %d passing instances at index %d", self.follow.identity, len(service.instances), index)
        self._last = service
        self.post(FailoverUpdate(service, self.dc, index))
        return True

    def run(self) -> None:
        self.follow.run()


def check_datacenters(reader: DCReader, wanted: Sequence[str]) -> None:
    """ConfigError when Consul does not know a datacenter of ``wanted``; a Consul that cannot be
    asked now is a warning (the watches retry, as for the local datacenter)."""
    if not wanted:
        return
    try:
        known = reader.datacenters()
    except CatalogError as exc:
        log.warning("cannot check the failover datacenters now: %s", exc)
        return
    unknown = [dc for dc in wanted if dc not in known]
    if unknown:
        raise ConfigError(
            f"--failover-dc {unknown[0]}: Consul knows no such datacenter (it knows {', '.join(known) or 'none'})"
        )
