"""``disco plan``."""

from __future__ import annotations

import json

import typer

from ..errors import DiscoveryError
from . import options as o
from .app import command
from .common import fail, setup_logging


@command(
    epilog="Example: `disco plan --config /etc/disco/watch.toml`, or "
    "`disco plan --service web --output /etc/haproxy/haproxy.cfg --runtime-socket /run/haproxy/admin.sock`"
)
@o.watch_options(own_before="log_format")
def plan(options: o.WatchOptions, json_: o.Json = False) -> None:
    """Say what `disco watch` would do now, with the same flags (or `--config`): read Consul once,
    render, compare with the live config and print nothing to do, the runtime API operations, or
    a reload and why, with the diff. The candidate is checked with `haproxy -c` in a private
    temporary directory; nothing is written, reloaded or changed.

    Exit status: 0 nothing to do; 3 changes to apply; 4 the candidate is broken (the template
    fails or `haproxy -c` rejects it: watch would keep the live config); 1 Consul or a file
    could not be read; 2 bad input.
    """
    from ..config import watch_config
    from ..consul.client import ConsulClient
    from ..observe.plan import make_plan
    from ..settings import consul_settings

    try:
        opts = options.resolve()
        setup_logging(opts["verbose"], opts["log-format"])
        report = make_plan(ConsulClient(consul_settings(opts["consul-addr"])), watch_config(opts))
    except DiscoveryError as exc:
        raise fail(exc) from None
    if json_:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for line in report.lines():
            typer.echo(line)
    raise typer.Exit(report.exit_code)
