"""``disco register``."""

from __future__ import annotations

import threading
from typing import Annotated

import typer

from ..errors import DiscoveryError
from .app import command
from .common import ConsulAddr, Verbose, fail, on_signals, setup_logging


@command(epilog="Example: `disco register --service web --port 8080 --check-http /health`")
def register(
    service: Annotated[str, typer.Option("--service", "-s", help="Service name, e.g. web.")],
    port: Annotated[int, typer.Option("--port", "-p", help="Port the instance listens on (1-65535).")],
    address: Annotated[
        str | None, typer.Option(help="Address others reach it at. Default: this machine's primary IP.")
    ] = None,
    id: Annotated[str | None, typer.Option("--id", help="Service ID. Default: NAME-HOSTNAME-PORT.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="A tag; repeat for more.")] = None,
    meta: Annotated[list[str] | None, typer.Option("--meta", help="KEY=VALUE metadata; repeat for more.")] = None,
    check_http: Annotated[
        str | None,
        typer.Option(
            "--check-http",
            metavar="PATH|URL",
            help="HTTP health check: a path on the instance (/health) or a full URL.",
        ),
    ] = None,
    check_tcp: Annotated[
        bool, typer.Option("--check-tcp", help="TCP connect check on address:port (the default).")
    ] = False,
    check_ttl: Annotated[
        str | None,
        typer.Option("--check-ttl", metavar="DURATION", help="TTL check; disco register sends the heartbeat itself."),
    ] = None,
    interval: Annotated[str, typer.Option(help="Check interval (Consul's minimum is 1s).")] = "1s",
    deregister_after: Annotated[
        str, typer.Option(help="Consul removes the instance after its check has been critical this long (minimum 1m).")
    ] = "1m",
    grace: Annotated[
        str,
        typer.Option(
            help="After deregistering on SIGTERM, wait this long before exiting, so load balancers stop routing "
            "here before the app stops (supervisord stops the app next)."
        ),
    ] = "0s",
    consul_addr: ConsulAddr = None,
    verbose: Verbose = False,
) -> None:
    """Register this instance with the local Consul agent, keep it registered, deregister on SIGTERM.

    Stays in the foreground, for supervisord. If the agent restarts and forgets the
    service, it is registered again within a few seconds.
    """
    from ..consul.client import ConsulClient
    from ..registration.register import Registrar, build_registration
    from ..settings import consul_settings, parse_duration, parse_pairs

    setup_logging(verbose)
    try:
        registration = build_registration(
            service,
            port,
            address=address,
            id=id,
            tags=tag or [],
            meta=parse_pairs(meta or [], "--meta"),
            check_http=check_http,
            check_tcp=check_tcp,
            check_ttl=parse_duration(check_ttl) if check_ttl else None,
            interval=parse_duration(interval),
            deregister_after=parse_duration(deregister_after),
        )
        stop = threading.Event()
        on_signals(stop.set)
        Registrar(ConsulClient(consul_settings(consul_addr)), registration, stop, grace=parse_duration(grace)).run()
    except DiscoveryError as exc:
        raise fail(exc) from None
