"""Which watch fits: one long poll per service, or two for the whole catalog.  Pure: no I/O.

Every blocking query holds an HTTP connection of its own, and Consul limits the connections
from one client address (``limits.http_max_conns_per_client``, 200 by default; past it 1.8.7
resets the connection with no HTTP answer, newer versions answer 429).  The agent reports its
limit in ``/v1/agent/self`` (``DebugConfig.HTTPMaxConnsPerClient``, readable with ``agent:read``),
and whether it serves ``?cached`` reads (``DebugConfig.HTTPUseCache``).

The per-service watch is chosen when its long polls fit under the limit with headroom for the
other clients on the same address (registrator, ``disco register``, health checks, the CLI):
a tenth of the limit, at least :data:`HEADROOM_MIN`.  Otherwise, or when the limit cannot be
read, ``auto`` follows the whole catalog (:mod:`~discovery.consul.catalog_watch`); an explicit
``--watch-mode service`` that cannot fit is refused at start rather than reset at run time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

#: Connections left to other clients of the agent on the same address, at least.
HEADROOM_MIN = 16
#: ... and at least this share of the limit.
HEADROOM_SHARE = 0.1


@dataclass(frozen=True)
class AgentLimits:
    """What the agent says about itself; ``None``: not known (``why`` says why)."""

    max_conns_per_client: int | None = None
    use_cache: bool | None = None
    why: str = ""
    #: The agent did not answer (it may be starting): asking again may help.
    unreachable: bool = False

    @property
    def known(self) -> bool:
        return self.max_conns_per_client is not None


def agent_limits(agent_self: Any) -> AgentLimits:
    """Read the limits from a ``/v1/agent/self`` answer (anything else: unknown, with the reason)."""
    debug = agent_self.get("DebugConfig") if isinstance(agent_self, Mapping) else None
    if not isinstance(debug, Mapping):
        return AgentLimits(why="the agent's answer has no DebugConfig")
    limit = debug.get("HTTPMaxConnsPerClient")
    cache = debug.get("HTTPUseCache")
    use_cache = cache if isinstance(cache, bool) else None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        return AgentLimits(None, use_cache, "the agent's DebugConfig has no HTTPMaxConnsPerClient")
    return AgentLimits(limit, use_cache)


def polls_allowed(limit: int) -> int:
    """Long polls one watcher may hold under a limit of ``limit`` connections per client (0: no limit)."""
    if limit == 0:
        return 1 << 30
    return max(0, limit - max(HEADROOM_MIN, math.ceil(limit * HEADROOM_SHARE)))


@dataclass(frozen=True)
class ModeChoice:
    """The watch to run, why, and (per service) how many connections it may open at most."""

    mode: str  # "service" or "catalog"
    reason: str
    connections: int = 0
    #: Ask with ``?cached``: ``--stale`` reads, and the agent says it serves cached reads.
    cached: bool = False

    @property
    def blocking_queries(self) -> int:
        return 2 if self.mode == "catalog" else self.connections


def choose_mode(
    requested: str,
    services: int,
    limits: AgentLimits,
    *,
    discover: bool = False,
    others: int = 0,
    stale: bool = False,
) -> ModeChoice:
    """The watch for ``services`` services under the agent's ``limits``, beside ``others`` long polls the
    watcher holds anyway (operator overrides, failover datacenters).

    Raises ConfigError for ``--watch-mode service`` with more long polls than the limit allows."""
    if discover:
        return ModeChoice("catalog", "--discover follows every service with a route tag through the catalog")
    if requested == "catalog":
        return ModeChoice("catalog", "--watch-mode catalog")
    # ?cached only where stale reads were asked for: the agent's cache reads the servers with stale
    # reads, and a follower applies a commit at the leader's next heartbeat (89 ms p50 against 6.7 on
    # a three-server cluster, measured); default reads stay consistent, the leader's.
    cached = stale and limits.use_cache is True
    limit = limits.max_conns_per_client
    allowed = None if limit is None else polls_allowed(limit)
    described = "no limit" if limit == 0 else f"{limit} connections per client"
    needed = services + others
    polls = f"{needed} long polls" + (
        f" ({services} services, {others} other watch{'es' if others > 1 else ''})" if others else ""
    )
    if requested == "service":
        if allowed is None:
            return ModeChoice(
                "service",
                f"--watch-mode service; the agent's connection limit is unknown ({limits.why})",
                services,
                cached,
            )
        if needed > allowed:
            raise ConfigError(
                f"--watch-mode service needs {polls}, but the agent allows {described}, "
                f"{allowed} after headroom for other clients: raise limits.http_max_conns_per_client "
                "in the agent's config, or use --watch-mode auto"
            )
        return ModeChoice("service", f"--watch-mode service; {polls}, the agent allows {described}", services, cached)
    if allowed is None:
        return ModeChoice("catalog", f"the agent's connection limit is unknown ({limits.why})")
    if needed > allowed:
        return ModeChoice(
            "catalog",
            f"{polls} would not fit under the agent's {described} ({allowed} after headroom for other clients)",
        )
    return ModeChoice("service", f"{polls} fit under the agent's {described}", services, cached)
