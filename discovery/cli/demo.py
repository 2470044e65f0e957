"""``disco demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import DiscoveryError
from .app import command
from .common import Verbose, fail, setup_logging


@command(epilog="Example: `disco demo --webapps 3`, then `curl http://127.0.0.1:8080/` a few times.")
def demo(
    webapps: Annotated[int, typer.Option(min=1, max=50, help="How many webapp instances to start.")] = 3,
    lb_port: Annotated[int, typer.Option(help="Load balancer port on 127.0.0.1.")] = 8080,
    stats_port: Annotated[int, typer.Option(help="HAProxy stats page port.")] = 1936,
    consul_port: Annotated[int, typer.Option(help="Consul HTTP/UI port.")] = 8500,
    dashboard_port: Annotated[int, typer.Option(help="disco's dashboard (and /metrics) port.")] = 9120,
    first_webapp_port: Annotated[int, typer.Option(help="Port of the first webapp; the others follow.")] = 9001,
    workdir: Annotated[
        Path | None, typer.Option(help="Where configs, sockets and logs go. Default: ./run/demo.")
    ] = None,
    consul_bin: Annotated[
        str | None,
        typer.Option(envvar="DISCO_CONSUL_BIN", help="Consul binary. Default: consul on PATH or in .cache."),
    ] = None,
    consul_ports: Annotated[
        str | None,
        typer.Option(
            metavar="LAN,WAN,RPC",
            help="Consul's serf LAN, serf WAN and server RPC ports on 127.0.0.1. Default: free ports picked at start.",
        ),
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Run the whole topology on this machine under one supervisord: Consul (with UI), HAProxy
    driven by `disco watch`, and N webapps each with its `disco register`.

    Prints the URLs; Ctrl-C stops everything and leaves nothing running.  Exits 2 at once,
    starting nothing, when a port it needs is taken (the line names the port and its holder);
    exits 1 when a program dies during the start (the line names it and its log).
    """
    from ..demo import DemoSpec, run_demo
    from ..ports import parse_ports

    setup_logging(verbose)
    try:
        spec = DemoSpec(
            webapps=webapps,
            lb_port=lb_port,
            stats_port=stats_port,
            consul_port=consul_port,
            dashboard_port=dashboard_port,
            first_webapp_port=first_webapp_port,
            workdir=(workdir or Path("run/demo")).resolve(),
            consul_bin=consul_bin,
            consul_ports=parse_ports(consul_ports),
        )
        raise typer.Exit(run_demo(spec, on_ready=typer.echo, on_problem=lambda line: typer.echo(line, err=True)))
    except DiscoveryError as exc:
        raise fail(exc) from None
