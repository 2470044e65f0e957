"""Observing disco: metrics, health and the dashboard of a running watcher, and the read-only commands.

- :mod:`.metrics`: Prometheus metrics, an event subscriber with a registry per watcher;
- :mod:`.health`: ``/healthz`` and ``/readyz`` (an event subscriber) and the HTTP server;
- :mod:`.httpd`: the HTTP server's bounded workers and read deadline;
- :mod:`.board`, :mod:`.board_data`, :mod:`.dashboard`: the dashboard at ``/`` (live state,
  the adapter that builds it, the page and its event stream); :mod:`.auth`: ``--listen-auth-file``;
- :mod:`.plan`: ``disco plan``, what ``watch`` would do now;
- :mod:`.status`: ``disco status``, Consul vs the config file vs HAProxy;
- :mod:`.explain`: ``disco explain``, why an instance is routed or not.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..pipeline.watcher import Watcher
    from .health import Server

#: Open dashboards (event streams) at most; past that a new one is refused, so they cannot starve the probes.
MAX_DASHBOARDS = 32


def serve(
    watcher: Watcher, address: tuple[str, int], stale_after: float = 60.0, auth_file: Path | None = None
) -> Server:
    """Subscribe metrics, health and the dashboard to ``watcher``'s events and serve them on ``address``,
    from threads the watcher owns.  Binds at once: ConfigError (exit 2) names an address in use, or an
    auth file that cannot be read."""
    from .. import __version__
    from ..consul.client import ConsulClient
    from ..haproxy.runtime import RuntimeAPI
    from .auth import Credential
    from .board import Board
    from .board_data import Sources, board_data
    from .dashboard import Dashboard
    from .health import Health, Server
    from .metrics import Metrics

    auth = Credential.load(auth_file) if auth_file is not None else None
    config = watcher.config
    metrics = Metrics(config.services, __version__, stale_reasks=lambda: watcher.catalog.stale_reasks)
    health = Health(stale_after)
    watcher.events.subscribe(metrics)
    watcher.events.subscribe(health)
    # The dashboard asks Consul on a client of its own: its reads are not the watcher's (counters, stop).
    catalog = watcher.catalog
    if isinstance(catalog, ConsulClient):
        catalog = ConsulClient(catalog.settings, request_timeout=2.0)
    runtime = RuntimeAPI(config.runtime_socket, timeout=1.0) if config.runtime_socket else None

    sources = Sources(
        catalog,
        config.output,
        tag=config.tag,
        runtime=runtime,
        failover=config.failover_dcs,
        overrides_prefix=config.overrides_prefix,
    )

    def snapshot(services: list[str], held: dict[str, str]) -> dict[str, Any]:
        return board_data(sources, services, held)

    board = Board(snapshot, config.services, _about(watcher, __version__))
    watcher.events.subscribe(board)
    server = Server(
        address,
        health,
        metrics.registry,
        streams=MAX_DASHBOARDS,
        dashboard=Dashboard(board, watcher.stop_event),
        auth=auth,
    )
    watcher.own("http", lambda: server.serve(watcher.stop_event))
    watcher.own("dashboard", lambda: board.run(watcher.stop_event))
    return server


def _about(watcher: Watcher, version: str) -> dict[str, Any]:
    """What the page says about this watcher: its version, the Consul and the HAProxy it talks to."""
    config = watcher.config
    settings = getattr(watcher.catalog, "settings", None)
    reloader = config.reloader
    path = getattr(reloader, "path", None)
    return {
        "version": version,
        "consul": getattr(settings, "url", None),
        "watch_mode": config.watch_mode,
        "discover": config.discover,
        "tag": config.tag,
        "output": str(config.output),
        "runtime_socket": str(config.runtime_socket) if config.runtime_socket else None,
        "reload": f"master socket {path}" if path else ("command" if reloader else None),
        "failover_dcs": list(config.failover_dcs),
        "overrides_prefix": config.overrides_prefix or None,
        "dry_run": watcher.dry_run,
    }
