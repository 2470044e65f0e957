"""Observing disco: metrics and health of a running watcher, and the read-only commands.

- :mod:`.metrics`: Prometheus metrics, an event subscriber with a registry per watcher;
- :mod:`.health`: ``/healthz`` and ``/readyz`` (an event subscriber) and the HTTP server;
- :mod:`.plan`: ``disco plan``, what ``watch`` would do now;
- :mod:`.status`: ``disco status``, Consul vs the config file vs HAProxy;
- :mod:`.explain`: ``disco explain``, why an instance is routed or not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..pipeline.watcher import Watcher
    from .health import Server


def serve(watcher: Watcher, address: tuple[str, int], stale_after: float = 60.0) -> Server:
    """Subscribe metrics and health to ``watcher``'s events and serve them on ``address``, from a
    thread the watcher owns.  Binds at once: ConfigError (exit 2) names an address in use."""
    from .. import __version__
    from .health import Health, Server
    from .metrics import Metrics

    metrics = Metrics(watcher.config.services, __version__, stale_reasks=lambda: watcher.catalog.stale_reasks)
    health = Health(stale_after)
    watcher.events.subscribe(metrics)
    watcher.events.subscribe(health)
    server = Server(address, health, metrics.registry)
    watcher.own("http", lambda: server.serve(watcher.stop_event))
    return server
