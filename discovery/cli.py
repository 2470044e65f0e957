"""The ``disco`` command: a thin Typer layer over the library.

Each command turns flags into settings, calls one library function and maps
:class:`~discovery.errors.DiscoveryError` to one line on stderr and exit code 1.
Errors are caught here and nowhere else.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import ConfigError, DiscoveryError

app = typer.Typer(
    help="Consul-backed service discovery for HAProxy.\n\n"
    "Webapps announce themselves with `disco register`; `disco watch` turns Consul's live view of "
    "the healthy instances into HAProxy's backends and reloads HAProxy; `disco demo` runs it all "
    "on this machine.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    add_completion=False,
)

ConsulAddr = Annotated[Optional[str], typer.Option(
    "--consul-addr", metavar="URL",
    help="Consul HTTP API, e.g. http://127.0.0.1:8500. Default: $CONSUL_HTTP_ADDR, else http://127.0.0.1:8500. "
         "The ACL token comes from $CONSUL_HTTP_TOKEN or $CONSUL_HTTP_TOKEN_FILE.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details too.")]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("urllib3", "requests"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _on_signals(stop: threading.Event | None = None, action=None) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM and SIGINT end the command cleanly (supervisord sends SIGTERM)."""
    def handler(signum: int, _frame: object) -> None:
        logging.getLogger("discovery").info("signal %s: stopping", signal.Signals(signum).name)
        if action is not None:
            action()
        elif stop is not None:
            stop.set()
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _fail(exc: DiscoveryError) -> typer.Exit:
    typer.echo(f"disco: error: {exc}", err=True)
    return typer.Exit(2 if isinstance(exc, ConfigError) else 1)


@app.command(epilog="Example: `disco register --service web --port 8080 --check-http /health`")
def register(
    service: Annotated[str, typer.Option("--service", "-s", help="Service name, e.g. web.")],
    port: Annotated[int, typer.Option("--port", "-p", help="Port the instance listens on (1-65535).")],
    address: Annotated[Optional[str], typer.Option(help="Address others reach it at. Default: this machine's primary IP.")] = None,
    id: Annotated[Optional[str], typer.Option("--id", help="Service ID. Default: NAME-HOSTNAME-PORT.")] = None,
    tag: Annotated[Optional[list[str]], typer.Option("--tag", "-t", help="A tag; repeat for more.")] = None,
    meta: Annotated[Optional[list[str]], typer.Option("--meta", help="KEY=VALUE metadata; repeat for more.")] = None,
    check_http: Annotated[Optional[str], typer.Option(
        "--check-http", metavar="PATH|URL", help="HTTP health check: a path on the instance (/health) or a full URL.")] = None,
    check_tcp: Annotated[bool, typer.Option("--check-tcp", help="TCP connect check on address:port (the default).")] = False,
    check_ttl: Annotated[Optional[str], typer.Option(
        "--check-ttl", metavar="DURATION", help="TTL check; disco register sends the heartbeat itself.")] = None,
    interval: Annotated[str, typer.Option(help="Check interval (Consul's minimum is 1s).")] = "1s",
    deregister_after: Annotated[str, typer.Option(
        help="Consul removes the instance after its check has been critical this long (minimum 1m).")] = "1m",
    grace: Annotated[str, typer.Option(
        help="After deregistering on SIGTERM, wait this long before exiting, so load balancers stop routing "
             "here before the app stops (supervisord stops the app next).")] = "0s",
    consul_addr: ConsulAddr = None,
    verbose: Verbose = False,
) -> None:
    """Register this instance with the local Consul agent, keep it registered, deregister on SIGTERM.

    Stays in the foreground, for supervisord. If the agent restarts and forgets the
    service, it is registered again within a few seconds.
    """
    from .catalog import ConsulClient
    from .register import Registrar, build_registration
    from .settings import consul_settings, parse_duration, parse_pairs

    _setup_logging(verbose)
    try:
        registration = build_registration(
            service, port, address=address, id=id, tags=tag or [], meta=parse_pairs(meta or [], "--meta"),
            check_http=check_http, check_tcp=check_tcp,
            check_ttl=parse_duration(check_ttl) if check_ttl else None,
            interval=parse_duration(interval), deregister_after=parse_duration(deregister_after))
        stop = threading.Event()
        _on_signals(stop)
        Registrar(ConsulClient(consul_settings(consul_addr)), registration, stop,
                  grace=parse_duration(grace)).run()
    except DiscoveryError as exc:
        raise _fail(exc) from None


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
    from .catalog import ConsulClient
    from .gate import GatePolicy
    from .haproxy import CommandReloader, MasterSocket, Reloader
    from .render import DEFAULT_TEMPLATE
    from .runner import WatchConfig, Watcher
    from .settings import consul_settings, parse_duration, parse_pairs, parse_wait
    from .validate import Validator

    _setup_logging(verbose)
    try:
        if master_socket and reload_cmd:
            raise ConfigError("give --master-socket or --reload-cmd, not both")
        if when_empty not in ("keep", "empty"):
            raise ConfigError(f"invalid --when-empty {when_empty!r}: use keep or empty")
        if watch_mode not in ("auto", "service", "catalog"):
            raise ConfigError(f"invalid --watch-mode {watch_mode!r}: use auto, service or catalog")
        reloader: Reloader | None = None
        if master_socket:
            reloader = MasterSocket(master_socket)
        elif reload_cmd:
            reloader = CommandReloader(reload_cmd)
        from . import names
        for name in service:
            reason = names.check(names.SERVICE_NAME, name, "service name")
            if reason:
                raise ConfigError(reason)
        values = parse_pairs(set_ or [], "--set")
        if runtime_socket is not None:
            values.setdefault("admin_socket", str(runtime_socket))
        config = WatchConfig(
            services=tuple(dict.fromkeys(service)), template=template or DEFAULT_TEMPLATE, output=output, tag=tag,
            values=values, wait=parse_wait(wait), validator=Validator(check_cmd), reloader=reloader,
            runtime_socket=runtime_socket, drain_grace=parse_duration(drain_grace), watch_mode=watch_mode,
            gate=GatePolicy(gate_share, parse_duration(gate_grace), when_empty))  # type: ignore[arg-type]
        watcher = Watcher(ConsulClient(consul_settings(consul_addr)), config, dry_run=dry_run,
                          output=lambda text: typer.echo(text, nl=False))
        _on_signals(action=watcher.stop)
        signal.signal(signal.SIGUSR1, lambda *_: watcher.log_stats())
        if bootstrap:
            watcher.bootstrap()
            if once:
                return
        watcher.run(once=once)
    except DiscoveryError as exc:
        raise _fail(exc) from None


@app.command(epilog="Example: `disco demo --webapps 3`, then `curl http://127.0.0.1:8080/` a few times.")
def demo(
    webapps: Annotated[int, typer.Option(min=1, max=50, help="How many webapp instances to start.")] = 3,
    lb_port: Annotated[int, typer.Option(help="Load balancer port on 127.0.0.1.")] = 8080,
    stats_port: Annotated[int, typer.Option(help="HAProxy stats page port.")] = 1936,
    consul_port: Annotated[int, typer.Option(help="Consul HTTP/UI port.")] = 8500,
    first_webapp_port: Annotated[int, typer.Option(help="Port of the first webapp; the others follow.")] = 9001,
    workdir: Annotated[Optional[Path], typer.Option(help="Where configs, sockets and logs go. Default: ./run/demo.")] = None,
    consul_bin: Annotated[Optional[str], typer.Option(envvar="DISCO_CONSUL_BIN", help="Consul binary. Default: consul on PATH or in .cache.")] = None,
    verbose: Verbose = False,
) -> None:
    """Run the whole topology on this machine under one supervisord: Consul (with UI), HAProxy
    driven by `disco watch`, and N webapps each with its `disco register`.

    Prints the URLs; Ctrl-C stops everything and leaves nothing running.
    """
    from .demo import DemoSpec, run_demo

    _setup_logging(verbose)
    try:
        spec = DemoSpec(webapps=webapps, lb_port=lb_port, stats_port=stats_port, consul_port=consul_port,
                        first_webapp_port=first_webapp_port, workdir=(workdir or Path("run/demo")).resolve(),
                        consul_bin=consul_bin)
        raise typer.Exit(run_demo(spec, on_ready=typer.echo))
    except DiscoveryError as exc:
        raise _fail(exc) from None


def main() -> None:
    app(prog_name="disco")


if __name__ == "__main__":
    main()
