"""What ``disco watch --once`` waits for before its single pass.

Every followed service read once (as for any first pass; past ``once_timeout`` that is
CatalogUnavailable, exit 1), and then, so that the one config written is the one a running
watcher would write:

- the first answer of the overrides prefix (``--overrides-prefix``), so drains, disables, pinned
  weights and routes taken out are in it;
- the first answer of each failover datacenter for each followed service, so their backups are in it.

Both are waited for at most :data:`EXTRA_WAIT` from the start (and never past ``once_timeout``):
the local Consul answered already, so what does not answer by then (a failover datacenter whose
WAN link is down, a token without ``key:read`` on the prefix) is said in one line, and the pass
goes on with what there is.  A failover datacenter whose watch reports a failure is not waited for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..consul.overrides_watch import KV
from ..consul.watch import ConsulRequest
from .events import Event
from .failover import FailoverStage
from .followed import Followed
from .overrides import OverrideStage

log = logging.getLogger("discovery.pipeline.watcher")

#: How long ``--once`` waits for the overrides' and failover datacenters' first answers.
EXTRA_WAIT = 10.0


class OnceGate:
    def __init__(
        self,
        followed: Followed,
        overrides: OverrideStage | None,
        failover: FailoverStage,
        clock: Callable[[], float],
        timeout: float,
    ) -> None:
        """``overrides``: None when none are followed (``--overrides-prefix ""``)."""
        self.followed = followed
        self.overrides = overrides
        self.failover = failover
        self.clock = clock
        self.started = clock()
        self.timeout = timeout
        self._kv_failed = False
        self._said = False

    def on_event(self, event: Event) -> None:
        """Subscribed to the watcher's events: a failed read of the overrides is not waited for."""
        if isinstance(event, ConsulRequest) and event.endpoint == KV and event.result == "error":
            self._kv_failed = True

    def missing(self) -> list[str]:
        """What the pass would go without: the overrides, and each (service in datacenter) not answered."""
        out = []
        if self.overrides is not None and not self.overrides.received and not self._kv_failed:
            out.append("the overrides")
        out += [f"{service} in {dc}" for service, dc in sorted(self.failover.awaited)]
        return out

    def ready(self) -> bool:
        """Is the single pass due?  Past the deadline, what is missing is said once and the pass goes on."""
        if not self.followed.complete:
            return False
        missing = self.missing()
        if not missing:
            return True
        if self.clock() - self.started < min(EXTRA_WAIT, self.timeout):
            return False
        if not self._said:
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            log.warning(
                "--once: no answer within %.0fs for %s%s; going on without them",
                min(EXTRA_WAIT, self.timeout),
                ", ".join(missing[:10]),
                more,
            )
            self._said = True
        return True
