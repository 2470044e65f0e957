"""``disco status``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import DiscoveryError
from . import options as o
from .app import command
from .common import ConsulAddr, Verbose, fail, setup_logging


@command(
    epilog="Example: `disco status --config /etc/disco/watch.toml`, or `disco status --service web "
    "--output /etc/haproxy/haproxy.cfg --runtime-socket /run/haproxy/admin.sock`"
)
def status(
    service: o.Services = None,
    output: o.Output = None,
    config: o.Config = None,
    template: o.Template = None,
    tag: o.Tag = None,
    set_: o.Set = None,
    discover: o.Discover = False,
    overrides_prefix: o.OverridesPrefix = None,
    failover_dc: o.FailoverDc = None,
    runtime_socket: o.RuntimeSocket = None,
    listen: o.AskWatcher = None,
    consul_addr: ConsulAddr = None,
    json_: o.Json = False,
    verbose: Verbose = False,
) -> None:
    """Per backend, the servers as Consul says they should be, as the config file has them and as
    HAProxy runs them (state, weight, health through the runtime API), with drift and gate holds
    flagged. Every server option is compared (address, weight, backup, maxconn, check), and the
    rest of the config (routes, service settings): Consul's view is rendered with the template
    and `--set` values, so give the watcher's (or its `--config`). Reads only.

    Exit status: 0 all three agree; 3 drift: HAProxy differs from the file; 4 pending: the file is
    not yet what Consul says (a change on its way, or held by the sanity gate); 1 Consul or a
    file could not be read; 2 bad input.
    """
    from ..config import overrides_prefix_of, render_inputs, require
    from ..consul.client import ConsulClient
    from ..haproxy.files import LiveConfig
    from ..haproxy.plan import parse
    from ..haproxy.runtime import RuntimeAPI
    from ..observe.health import ask_watcher
    from ..observe.overrides import seen
    from ..observe.status import status as run
    from ..settings import consul_settings

    try:
        opts = o.resolve_options(
            config,
            service=service,
            output=output,
            template=template,
            tag=tag,
            set_=set_,
            discover=discover,
            overrides_prefix=overrides_prefix,
            failover_dc=failover_dc,
            runtime_socket=runtime_socket,
            listen=listen,
            consul_addr=consul_addr,
            verbose=verbose,
        )
        setup_logging(opts["verbose"], opts["log-format"])
        require(opts, "output")
        template_path, values = render_inputs(opts)
        text = LiveConfig(Path(opts["output"])).read()
        parsed = parse(text) if text is not None else None
        catalog = ConsulClient(consul_settings(opts["consul-addr"]))
        # What watch follows (with --discover, the services with a route tag too); with neither,
        # the file's backends.  Backends the file still has are compared as well (a service just gone).
        services = tuple(opts["service"]) or (() if opts["discover"] else (parsed.backends if parsed else ()))
        watcher = ask_watcher(opts["listen"]) if opts.get("listen") else None
        socket = opts.get("runtime-socket")
        prefix = overrides_prefix_of(opts)
        overrides = seen(catalog, prefix)
        report = run(
            catalog,
            services,
            Path(opts["output"]),
            template=template_path,
            values=values,
            tag=opts["tag"],
            discover=bool(opts["discover"]),
            runtime=RuntimeAPI(Path(socket)) if socket else None,
            held=(watcher or {}).get("held_services") or {},
            overrides_prefix=prefix,
            failover_dcs=tuple(opts["failover-dc"] or ()),
        )
    except DiscoveryError as exc:
        raise fail(exc) from None
    notes = list(report.notes)  # the overrides' lines among them, as the watcher reads them
    if text is None:
        notes.append(f"{opts['output']} does not exist yet")
    if not socket:
        notes.append("no --runtime-socket: HAProxy not asked, drift unknown")
    if opts.get("listen") and watcher is None:
        notes.append(f"no watcher answers on {opts['listen']}: gate holds unknown")
    if json_:
        typer.echo(json.dumps({**report.as_dict(), "notes": notes, "overrides": overrides.as_dict()}, indent=2))
    else:
        show(report, notes)
    raise typer.Exit(report.exit_code)


def show(report: object, notes: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..observe.status import Status

    assert isinstance(report, Status)
    console = Console()
    if not console.is_terminal:  # piped: no wrapping at 80 columns, no colours
        console = Console(width=200, no_color=True)
    for backend in report.backends:
        title = f"backend {backend.backend}" + (f" — held by the sanity gate: {backend.held}" if backend.held else "")
        table = Table(title=title, title_justify="left")
        for column in ("server", "Consul", "file", "HAProxy", "state", "weight", "health", "flag"):
            table.add_column(column)
        for row in backend.servers:
            flag = (
                f"[red]DRIFT: {row.drift}[/red]"
                if row.drift
                else f"[yellow]pending: {row.pending}[/yellow]"
                if row.pending
                else "[green]ok[/green]"
            )
            table.add_row(
                row.name,
                row.consul or "-",
                row.file or "-",
                row.haproxy or "-",
                (row.state or "-") + (" (override)" if row.override else ""),
                "-" if row.weight is None else str(row.weight),
                row.health or "-",
                flag,
            )
        console.print(table)
        if backend.haproxy_error:
            console.print(f"  HAProxy did not answer: {backend.haproxy_error}")
    if report.config_pending:
        console.print(f"pending: {report.config_pending}", markup=False)
    for note in notes:
        console.print(f"note: {note}", markup=False)
    verdict = {
        0: "in step",
        3: "DRIFT: HAProxy differs from the config file",
        4: "pending: the config file is not yet what Consul says",
    }[report.exit_code]
    console.print(verdict, markup=False)
