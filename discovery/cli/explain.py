"""``disco explain``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError, DiscoveryError
from . import options as o
from .app import command
from .common import ConsulAddr, Verbose, fail, setup_logging


@command(epilog="Example: `disco explain web/web-2 --config /etc/disco/watch.toml`")
def explain(
    target: Annotated[
        str,
        typer.Argument(
            metavar="SERVICE[/INSTANCE]", help="A service, or one of its instances (service ID or HAProxy server name)."
        ),
    ],
    config: o.Config = None,
    output: o.Output = None,
    template: o.Template = None,
    tag: o.Tag = None,
    set_: o.Set = None,
    overrides_prefix: o.OverridesPrefix = None,
    runtime_socket: o.RuntimeSocket = None,
    listen: o.AskWatcher = None,
    consul_addr: ConsulAddr = None,
    json_: o.Json = False,
    verbose: Verbose = False,
) -> None:
    """Why each instance of a service is routed or not: every instance Consul knows (whatever its
    checks say) and every reason, in order: a check not passing (which, with its output),
    maintenance mode, filtered out by --tag, refused by the catalog checks (which field and why),
    held by the sanity gate, draining in HAProxy, a change not yet applied. Server names and
    whether each is routed come from the comparison `status` and `plan` use (give the watcher's
    `--template` and `--set` values, or its `--config`). Reads only.

    Exit status: 0 every instance shown is routed; 3 at least one is not; 1 Consul could not be
    read; 2 bad input (a service or an instance nobody knows).
    """
    from ..config import overrides_prefix_of, render_inputs
    from ..consul.client import ConsulClient
    from ..haproxy.runtime import RuntimeAPI
    from ..observe.explain import ALL_ROUTED, NOT_ROUTED, as_dicts
    from ..observe.explain import explain as run
    from ..observe.health import ask_watcher
    from ..observe.overrides import seen
    from ..settings import consul_settings

    try:
        opts = o.resolve_options(
            config,
            output=output,
            template=template,
            tag=tag,
            set_=set_,
            overrides_prefix=overrides_prefix,
            runtime_socket=runtime_socket,
            listen=listen,
            consul_addr=consul_addr,
            verbose=verbose,
        )
        setup_logging(opts["verbose"], opts["log-format"])
        service, _, instance = target.partition("/")
        from ..state import checks

        if reason := checks.check(checks.SERVICE_NAME, service, "service name"):
            raise ConfigError(reason)
        template_path, values = render_inputs(opts)
        watcher = ask_watcher(opts["listen"]) if opts.get("listen") else None
        socket = opts.get("runtime-socket")
        client = ConsulClient(consul_settings(opts["consul-addr"]))
        overrides = seen(client, overrides_prefix_of(opts))
        explained = run(
            client,
            service,
            instance or None,
            tag=opts["tag"],
            output=Path(opts["output"]) if opts.get("output") else None,
            template=template_path,
            values=values,
            runtime=RuntimeAPI(Path(socket)) if socket else None,
            held=(watcher or {}).get("held_services") or {},
            overrides=overrides,
        )
    except DiscoveryError as exc:
        raise fail(exc) from None
    if json_:
        typer.echo(json.dumps(as_dicts(explained), indent=2))
    else:
        if not explained:
            typer.echo(f"Consul lists no instance of {service}")
        if opts.get("listen") and watcher is None:
            typer.echo(f"note: no watcher answers on {opts['listen']}: gate holds unknown")
        for line in overrides.lines((service,)):
            typer.echo(line)
        for item in explained:
            for line in item.lines():
                typer.echo(line)
    raise typer.Exit(ALL_ROUTED if all(e.routed for e in explained) else NOT_ROUTED)
