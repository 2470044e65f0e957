"""What the watcher follows, and how: the choice of watch and the worker threads that read Consul.

The watch mode (:func:`~discovery.consul.fit.choose_mode`) is one blocking query per service on one
event loop (:mod:`~discovery.consul.service_loop`) or two for the whole catalog
(:mod:`~discovery.consul.catalog_watch`); beside it run the overrides watch and the gate's leader
probe (the watches of the failover datacenters come and go with the followed services:
:mod:`~discovery.pipeline.failover_follows`).  Every one posts what it sees to the watcher's inbox.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from ..consul.catalog_watch import CatalogWatch
from ..consul.client import Catalog
from ..consul.fit import AgentLimits, ModeChoice, choose_mode
from ..consul.overrides_watch import KVReader, OverridesWatch
from ..consul.service_loop import ServiceLoop
from .gatekeeper import LeaderProbe
from .inbox import Message
from .lifecycle import Workers

if TYPE_CHECKING:
    from .watch_config import WatchConfig

# The watcher's lines, under the name they had before this module was split out of it.
log = logging.getLogger("discovery.pipeline.watcher")

#: How long to wait for the agent to answer ``/v1/agent/self`` at start (it may start with disco).
AGENT_SELF_WITHIN = 10.0


def known_mode(config: WatchConfig) -> ModeChoice | None:
    """The catalog watch needs nothing of the agent: chosen at once; the others when the watch starts."""
    return (
        choose_mode("catalog", len(config.services), AgentLimits(), discover=config.discover)
        if config.discover or config.watch_mode == "catalog"
        else None
    )


def fitting_mode(
    catalog: Catalog, config: WatchConfig, clock: Callable[[], float], stop_event: threading.Event
) -> ModeChoice:
    """The watch that fits (:func:`~discovery.consul.fit.choose_mode`), asking the agent for its limits.
    Raises ConfigError for ``--watch-mode service`` beyond the agent's connection limit."""
    limits = AgentLimits(why="not asked")
    if not config.discover and config.watch_mode != "catalog":
        limits = catalog.agent_limits()
        deadline, delay = clock() + AGENT_SELF_WITHIN, 0.25
        while limits.unreachable and clock() < deadline:  # not up yet: ask again
            if stop_event.wait(delay):
                break
            limits, delay = catalog.agent_limits(), min(2.0, delay * 2)
    others = (1 if config.overrides_prefix else 0) + len(config.services) * len(config.failover_dcs)
    return choose_mode(
        config.watch_mode,
        len(config.services),
        limits,
        discover=config.discover,
        others=others,
        stale=catalog.stale,
    )


def start_watches(
    catalog: Catalog,
    config: WatchConfig,
    mode: ModeChoice,
    post: Callable[[Message], None],
    stop_event: threading.Event,
    workers: Workers,
    probe_wanted: threading.Event,
) -> ServiceLoop | None:
    """Start the watch of ``mode``, the overrides watch and the leader probe as
    ``workers``; returns the per-service event loop (to stop it), if that is the watch."""
    how = " (?cached: the agent keeps the queries to the servers)" if mode.cached else ""
    log.info("watch mode %s%s: %s", mode.mode, how, mode.reason)
    service_loop: ServiceLoop | None = None
    if mode.mode == "catalog":
        watch = CatalogWatch(
            catalog,
            config.services,
            post,
            stop_event,
            tag=config.tag,
            timing=config.timing,
            report=post,
            discover=config.discover,
        )
        workers.start("watch-catalog", watch.run)
    else:
        connections, cached = mode.connections, mode.cached
        service_loop = ServiceLoop(
            lambda: catalog.service_reader(connections, cached),
            config.services,
            post,
            tag=config.tag,
            timing=config.timing,
            report=post,
        )
        workers.start("watch-services", service_loop.run)
    if config.overrides_prefix:
        kv = OverridesWatch(
            cast(KVReader, catalog),
            config.overrides_prefix,
            post,
            stop_event,
            timing=config.timing,
            report=post,
        )
        workers.start("watch-overrides", kv.run)
    probe = LeaderProbe(catalog, probe_wanted, post, stop_event)
    workers.start("gate-leader", probe.run)
    log.info(
        "watching %d services%s with %d blocking queries",
        len(config.services),
        " and every service with a route tag" if config.discover else "",
        mode.blocking_queries,
    )
    return service_loop
