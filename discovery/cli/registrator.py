"""``disco registrator``."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from ..errors import ConfigError, DiscoveryError
from .app import command
from .common import ConsulAddr, Verbose, fail, on_signals, setup_logging


@command(epilog="Example: `disco registrator --network web --resync 30s` beside the host's Consul agent.")
def registrator(
    network: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Register containers at their IP on this Docker network. Default: a container's only network.",
        ),
    ] = None,
    host_ip: Annotated[
        str | None,
        typer.Option(
            metavar="IP", help="Register the published host port on this host IP instead of the container's IP."
        ),
    ] = None,
    resync: Annotated[
        str,
        typer.Option(
            metavar="DURATION",
            help="Reconcile the agent with the engine this often (also at start and after a reconnect).",
        ),
    ] = "30s",
    explicit: Annotated[
        bool,
        typer.Option(
            "--explicit",
            help="Only containers that name their service (disco.service, SERVICE_NAME, SERVICE_8080_NAME).",
        ),
    ] = False,
    deregister_on_exit: Annotated[
        bool,
        typer.Option(
            "--deregister-on-exit", help="On SIGTERM, remove this registrator's registrations (default: leave them)."
        ),
    ] = False,
    host: Annotated[
        str | None,
        typer.Option(
            help="This registrator's name in service IDs (disco-reg:HOST:CONTAINER:PORT). Default: the host name."
        ),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(
            metavar="KEY[=VALUE]", help="Only containers with this label (e.g. com.docker.compose.project=web)."
        ),
    ] = None,
    consul_addr: ConsulAddr = None,
    verbose: Verbose = False,
) -> None:
    """Register Docker containers with the local Consul agent from their labels, and keep the agent in step.

    Follows the Docker engine (DOCKER_HOST, else the local socket): `disco.service=NAME` +
    `disco.port=PORT` labels (or registrator's SERVICE_* variables) make a container a service.
    Stopping containers are deregistered before they exit; a reconcile every --resync removes
    registrations whose container is gone. Exits 0 on SIGTERM, leaving the registrations.
    """
    from ..consul.client import ConsulClient
    from ..registration.engine import Engine
    from ..registration.labels import Placement, host_name
    from ..registration.registrator import Registrator
    from ..settings import consul_settings, parse_duration
    from ..state import checks as names

    setup_logging(verbose)
    try:
        if network and host_ip:
            raise ConfigError("give --network or --host-ip, not both")
        if host_ip and names.check_address(host_ip):
            raise ConfigError(f"--host-ip: {names.check_address(host_ip)}")
        period = parse_duration(resync)
        if period < 1.0:
            raise ConfigError(f"--resync {resync!r}: at least 1s")
        placement = Placement(
            host=host_name(host or socket.gethostname()),
            network=network,
            host_ip=host_ip,
            explicit=explicit,
            label=label,
        )
        worker = Registrator(
            ConsulClient(consul_settings(consul_addr), request_timeout=5.0),
            Engine,
            placement,
            resync=period,
            deregister_on_exit=deregister_on_exit,
        )
        on_signals(worker.stop)
        worker.run()
    except DiscoveryError as exc:
        raise fail(exc) from None
