"""``disco plan``."""

from __future__ import annotations

import json

import typer

from ..errors import DiscoveryError
from . import options as o
from .app import command
from .common import ConsulAddr, Verbose, fail, setup_logging


@command(
    epilog="Example: `disco plan --config /etc/disco/watch.toml`, or "
    "`disco plan --service web --output /etc/haproxy/haproxy.cfg --runtime-socket /run/haproxy/admin.sock`"
)
def plan(
    service: o.Services = None,
    output: o.Output = None,
    config: o.Config = None,
    template: o.Template = None,
    tag: o.Tag = None,
    set_: o.Set = None,
    master_socket: o.MasterSocket = None,
    reload_cmd: o.ReloadCmd = None,
    runtime_socket: o.RuntimeSocket = None,
    drain_grace: o.DrainGrace = None,
    check_cmd: o.CheckCmd = None,
    wait: o.Wait = None,
    gate_share: o.GateShare = None,
    gate_grace: o.GateGrace = None,
    when_empty: o.WhenEmpty = None,
    watch_mode: o.WatchMode = None,
    discover: o.Discover = False,
    overrides_prefix: o.OverridesPrefix = None,
    failover_dc: o.FailoverDc = None,
    consul_addr: ConsulAddr = None,
    json_: o.Json = False,
    log_format: o.LogFormat = None,
    verbose: Verbose = False,
) -> None:
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
        opts = o.resolve_options(
            config,
            service=service,
            output=output,
            template=template,
            tag=tag,
            set_=set_,
            master_socket=master_socket,
            reload_cmd=reload_cmd,
            runtime_socket=runtime_socket,
            drain_grace=drain_grace,
            check_cmd=check_cmd,
            wait=wait,
            gate_share=gate_share,
            gate_grace=gate_grace,
            when_empty=when_empty,
            watch_mode=watch_mode,
            discover=discover,
            overrides_prefix=overrides_prefix,
            failover_dc=failover_dc,
            consul_addr=consul_addr,
            log_format=log_format,
            verbose=verbose,
        )
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
