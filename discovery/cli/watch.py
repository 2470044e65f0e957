"""``disco watch``."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import typer

from ..errors import ConfigError, DiscoveryError
from ..signals import SignalRelay
from . import options as o
from .app import command
from .common import fail, on_signals, setup_logging

#: Seconds a thread may hold the GIL while another waits for it (CPython's default: 0.005).
SWITCH_INTERVAL = 0.0005


@command(
    epilog="Example: `disco watch --service web --output /etc/haproxy/haproxy.cfg "
    "--master-socket /run/haproxy-master.sock --set frontend_port=80`, or "
    "`disco watch --config /etc/disco/watch.toml`"
)
@o.watch_options()
def watch(
    options: o.WatchOptions,
    stale: o.Stale = False,
    max_stale: o.MaxStale = None,
    blocking_wait: o.BlockingWait = None,
    listen: o.Listen = None,
    listen_auth_file: o.ListenAuthFile = None,
    once: o.Once = False,
    bootstrap: o.Bootstrap = False,
    dry_run: o.DryRun = False,
) -> None:
    """Follow the healthy instances of services in Consul and keep HAProxy's config in step.

    Long-polls Consul (blocking queries), renders the template with Jinja2, validates
    the result with `haproxy -c`, swaps it in atomically (keeping OUTPUT.last-good) and
    reloads HAProxy. Consul being down never empties the live config.
    """
    from ..config import parse_listen, watch_config
    from ..consul.client import ConsulClient
    from ..consul.failover_watch import check_datacenters
    from ..observe import serve
    from ..pipeline.watcher import Watcher
    from ..settings import consul_settings, parse_duration

    try:
        opts = options.resolve(
            stale=stale,
            max_stale=max_stale,
            blocking_wait=blocking_wait,
            listen=listen,
            listen_auth_file=listen_auth_file,
            once=once,
            bootstrap=bootstrap,
            dry_run=dry_run,
        )
        setup_logging(opts["verbose"], opts["log-format"])
        # A watch thread that hands a change on goes straight into its next long poll (a millisecond or
        # two of Python before the socket wait releases the GIL); the loop waiting for the change
        # should not wait out CPython's 5 ms switch interval for it.
        sys.setswitchinterval(SWITCH_INTERVAL)
        watch_settings = watch_config(opts)
        client = ConsulClient(
            consul_settings(opts["consul-addr"]), stale=opts["stale"], max_stale=parse_duration(opts["max-stale"])
        )
        check_datacenters(client, watch_settings.failover_dcs)  # an unknown one: ConfigError, exit 2
        watcher = Watcher(
            client, watch_settings, dry_run=opts["dry-run"], output=lambda text: typer.echo(text, nl=False)
        )
        auth_file = opts["listen-auth-file"]
        if auth_file and not opts["listen"]:
            raise ConfigError("--listen-auth-file protects --listen: give both")
        if opts["listen"] and not opts["once"]:
            serve(watcher, parse_listen(opts["listen"]), auth_file=Path(auth_file) if auth_file else None)
        on_signals(watcher.stop)
        SignalRelay(watcher.log_stats, what="stats").install(signal.SIGUSR1)
        if opts["bootstrap"]:
            watcher.bootstrap()
            if opts["once"]:
                return
        watcher.run(once=opts["once"])
    except DiscoveryError as exc:
        raise fail(exc) from None
