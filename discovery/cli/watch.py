"""``disco watch``."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ConfigError, DiscoveryError
from ..signals import SignalRelay
from .common import ConsulAddr, Verbose, fail, on_signals, setup_logging

from .app import app


@app.command(epilog="Example: `disco watch --service web --output /etc/haproxy/haproxy.cfg "
             "--master-socket /run/haproxy-master.sock --set frontend_port=80`")
def watch(
    service: Annotated[list[str], typer.Option("--service", "-s", help="Service to follow; repeat for more. One backend each.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The HAProxy config file to write.")],
    template: Annotated[Optional[Path], typer.Option(
        "--template", "-T", help="Jinja2 template. Default: the bundled haproxy.cfg.j2.")] = None,
    tag: Annotated[Optional[str], typer.Option(help="Only instances with this tag.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="K=V", help="A template value, e.g. frontend_port=8080; repeat for more.")] = None,
    master_socket: Annotated[Optional[Path], typer.Option(
        help="HAProxy master CLI socket (haproxy -W -S PATH): reload through it and confirm.")] = None,
    reload_cmd: Annotated[Optional[str], typer.Option(help="Command that reloads HAProxy (run without a shell).")] = None,
    runtime_socket: Annotated[Optional[Path], typer.Option(
        help="HAProxy admin socket: apply server-only changes live through the runtime API, no reload. "
             "Sets the template value admin_socket.")] = None,
    drain_grace: Annotated[str, typer.Option(
        help="With --runtime-socket: how long a removed server drains before it is deleted.")] = "10s",
    check_cmd: Annotated[str, typer.Option(
        help="Command that validates a candidate config; {path} is replaced by its path.")] = "haproxy -c -f {path}",
    wait: Annotated[str, typer.Option(
        metavar="MIN[:MAX]", help="Quiescence: apply once changes pause for MIN, at most MAX after the first.")] = "10ms:1s",
    gate_share: Annotated[float, typer.Option(
        min=0.01, max=1.0, help="Sanity gate: a change removing at least this share of a service's instances at "
                                "once is suspect (1.0: all of them).")] = 1.0,
    gate_grace: Annotated[str, typer.Option(
        help="A suspect change is held until Consul has a leader again, or this long.")] = "30s",
    when_empty: Annotated[str, typer.Option(
        help="A service left with no instance while Consul is healthy: keep (the last servers, for --gate-grace) "
             "or empty (at once; the backend answers 503).")] = "keep",
    watch_mode: Annotated[str, typer.Option(
        help="service: one blocking query per service; catalog: two for the whole datacenter; "
             "auto: catalog above 8 services.")] = "auto",
    once: Annotated[bool, typer.Option("--once", help="Render, validate, write (and reload) once, then exit.")] = False,
    bootstrap: Annotated[bool, typer.Option(
        "--bootstrap", help="If OUTPUT does not exist, first write a config with no instances (so HAProxy can "
                            "start before Consul answers). With --once, exit right after, without Consul.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the rendered config; touch nothing.")] = False,
    consul_addr: ConsulAddr = None,
    verbose: Verbose = False,
) -> None:
    """Follow the healthy instances of services in Consul and keep HAProxy's config in step.

    Long-polls Consul (blocking queries), renders the template with Jinja2, validates
    the result with `haproxy -c`, swaps it in atomically (keeping OUTPUT.last-good) and
    reloads HAProxy. Consul being down never empties the live config.
    """
    from ..consul.client import ConsulClient
    from ..state.gate import GatePolicy
    from ..haproxy.master import CommandReloader, MasterSocket, Reloader
    from ..haproxy.render import DEFAULT_TEMPLATE
    from ..pipeline.watcher import WatchConfig, Watcher
    from ..settings import consul_settings, parse_duration, parse_pairs, parse_wait
    from ..haproxy.validate import Validator

    setup_logging(verbose)
    try:
        if master_socket and reload_cmd:
            raise ConfigError("give --master-socket or --reload-cmd, not both")
        if when_empty not in ("keep", "empty"):
            raise ConfigError(f"invalid --when-empty {when_empty!r}: use keep or empty")
        if watch_mode not in ("auto", "service", "catalog"):
            raise ConfigError(f"invalid --watch-mode {watch_mode!r}: use auto, service or catalog")
        if template is not None and not template.is_file():
            raise ConfigError(f"--template {template}: no such file")
        reloader: Reloader | None = None
        if master_socket:
            reloader = MasterSocket(master_socket)
        elif reload_cmd:
            reloader = CommandReloader(reload_cmd)
        from ..state import checks as names
        for name in service:
            reason = names.check(names.SERVICE_NAME, name, "service name")
            if reason:
                raise ConfigError(reason)
        validator = Validator(check_cmd)
        validator.ensure_available()
        values = parse_pairs(set_ or [], "--set")
        if runtime_socket is not None:
            values.setdefault("admin_socket", str(runtime_socket))
        config = WatchConfig(
            services=tuple(dict.fromkeys(service)), template=template or DEFAULT_TEMPLATE, output=output, tag=tag,
            values=values, wait=parse_wait(wait), validator=validator, reloader=reloader,
            runtime_socket=runtime_socket, drain_grace=parse_duration(drain_grace), watch_mode=watch_mode,
            gate=GatePolicy(gate_share, parse_duration(gate_grace), when_empty))  # type: ignore[arg-type]
        watcher = Watcher(ConsulClient(consul_settings(consul_addr)), config, dry_run=dry_run,
                          output=lambda text: typer.echo(text, nl=False))
        on_signals(watcher.stop)
        SignalRelay(watcher.log_stats, what="stats").install(signal.SIGUSR1)
        if bootstrap:
            watcher.bootstrap()
            if once:
                return
        watcher.run(once=once)
    except DiscoveryError as exc:
        raise fail(exc) from None
