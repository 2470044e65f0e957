"""The options of ``disco watch``, defined once: ``watch`` and ``plan`` (and, for the few they
need, ``status`` and ``explain``) declare their parameters with these.  The options ``watch``
and ``plan`` share are declared once more, as one list (:data:`SHARED`): :func:`watch_options`
gives both commands those parameters and hands them over as one :class:`WatchOptions`, so a new
option is added here only.

Every default is "not given" (None or False): the value comes from the command line, else
from ``--config FILE``, else from :data:`discovery.config.WATCH_KEYS`.  The defaults a user
sees in ``--help`` are written in the help text.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import flag_values, resolve
from ..settings import parse_pairs
from .common import ConsulAddr, Verbose

Config = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="FILE",
        help="TOML file with any of these options (keys are the flag names, e.g. "
        'master-socket = "/run/haproxy/master.sock"); flags win.',
    ),
]
Services = Annotated[
    list[str] | None, typer.Option("--service", "-s", help="Service to follow; repeat for more. One backend each.")
]
Output = Annotated[Path | None, typer.Option("--output", "-o", help="The HAProxy config file to write.")]
Template = Annotated[
    Path | None, typer.Option("--template", "-T", help="Jinja2 template. Default: the bundled haproxy.cfg.j2.")
]
Tag = Annotated[str | None, typer.Option(help="Only instances with this tag.")]
Set = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="K=V", help="A template value, e.g. frontend_port=8080; repeat for more."),
]
MasterSocket = Annotated[
    Path | None, typer.Option(help="HAProxy master CLI socket (haproxy -W -S PATH): reload through it and confirm.")
]
ReloadCmd = Annotated[str | None, typer.Option(help="Command that reloads HAProxy (run without a shell).")]
RuntimeSocket = Annotated[
    Path | None,
    typer.Option(
        help="HAProxy admin socket: apply server-only changes live through the runtime API, no reload. "
        "Sets the template value admin_socket."
    ),
]
DrainGrace = Annotated[
    str | None,
    typer.Option(help="With --runtime-socket: how long a removed server drains before it is deleted. Default: 10s."),
]
CheckCmd = Annotated[
    str | None,
    typer.Option(
        help="Command that validates a candidate config; {path} is replaced by its path. Default: haproxy -c -f {path}."
    ),
]
Wait = Annotated[
    str | None,
    typer.Option(
        metavar="MIN[:MAX]",
        help="Quiescence: apply once changes pause for MIN, at most MAX after the first. Default: 10ms:1s.",
    ),
]
GateShare = Annotated[
    float | None,
    typer.Option(
        help="Sanity gate: a change removing at least this share (0.01-1.0) of a service's instances at once is "
        "suspect. Default: 1.0 (all of them)."
    ),
]
GateGrace = Annotated[
    str | None,
    typer.Option(
        help="A suspect change is held until Consul has a leader again, or this long (a held first view of "
        "a service holds every render). Default: 30s."
    ),
]
WhenEmpty = Annotated[
    str | None,
    typer.Option(
        help="A service left with no instance while Consul is healthy: keep (the last servers, for --gate-grace) "
        "or empty (at once; the backend answers 503). Default: keep."
    ),
]
WatchMode = Annotated[
    str | None,
    typer.Option(
        help="service: one blocking query per service, all on one event loop (refused at start when they "
        "would not fit under the agent's connection limit); catalog: two for the whole datacenter; auto "
        "(default): service when the long polls fit under the agent's http_max_conns_per_client with "
        "headroom, catalog otherwise, when the limit cannot be read (agent:read), or with --discover."
    ),
]
Stale = Annotated[
    bool,
    typer.Option(
        "--stale",
        help="Read with ?stale: any Consul server answers from its own copy (no forwarding to the "
        "leader), and reads go on during a leader election.",
    ),
]
MaxStale = Annotated[
    str | None,
    typer.Option(
        metavar="DURATION",
        help="With --stale: an answer from a server that has not heard from the leader for "
        "longer than this is asked again with the default consistency. Default: 2s.",
    ),
]
BlockingWait = Annotated[
    str | None,
    typer.Option(
        metavar="DURATION",
        help="How long Consul holds each blocking query (1s-10m); a silent (half-open) connection is "
        "noticed after this plus a sixteenth and 5s. Default: 5m.",
    ),
]
Listen = Annotated[
    str | None,
    typer.Option(
        metavar="ADDR:PORT",
        help="Serve the dashboard (/), /metrics (Prometheus), /healthz and /readyz on this address.",
    ),
]
ListenAuthFile = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE",
        help="With --listen: the dashboard and /metrics ask for the credential in FILE (one line: a bearer "
        "token, or user:password); /healthz and /readyz stay open.",
    ),
]
LogFormat = Annotated[
    str | None,
    typer.Option(help="text (default) or json: one JSON object per line, with the fields of the text lines."),
]


FailoverDc = Annotated[
    list[str] | None,
    typer.Option(
        "--failover-dc",
        metavar="DC",
        help="Another Consul datacenter whose passing instances of each followed service (--service, "
        "--discover) become backup servers (served only while no local one is up); repeat for more, in "
        "order of preference.",
    ),
]
OverridesPrefix = Annotated[
    str | None,
    typer.Option(
        help="Consul KV prefix of operator overrides (drain, disable, pin a weight, take a route out), one "
        'JSON document per service, followed with one blocking query; "" turns them off. '
        "Default: disco/overrides/.",
    ),
]
Discover = Annotated[
    bool,
    typer.Option(
        "--discover",
        help="Also follow every service in Consul with a route tag (urlprefix-...), as it is registered "
        "or goes away; --service names are followed whatever their tags. Uses the catalog watch "
        "(not with --watch-mode service).",
    ),
]
Once = Annotated[bool, typer.Option("--once", help="Render, validate, write (and reload) once, then exit.")]
Bootstrap = Annotated[
    bool,
    typer.Option(
        "--bootstrap",
        help="If OUTPUT does not exist, first write a config with no instances (so HAProxy can "
        "start before Consul answers). With --once, exit right after, without Consul.",
    ),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the rendered config; touch nothing.")]


def resolve_options(config: Path | None, **params: Any) -> dict[str, Any]:
    """The command's parameters, with ``--config``'s file under them and the defaults under that."""
    flags = flag_values(**params)
    if flags.get("set"):
        flags["set"] = parse_pairs(flags["set"], "--set")
    return resolve(flags, config)


#: The parameters ``watch`` and ``plan`` share (name, declaration, default), in the order ``--help``
#: lists them; a command's own parameters go before ``consul_addr`` (or another: ``own_before``).
SHARED: tuple[tuple[str, Any, Any], ...] = (
    ("service", Services, None),
    ("output", Output, None),
    ("config", Config, None),
    ("template", Template, None),
    ("tag", Tag, None),
    ("set_", Set, None),
    ("master_socket", MasterSocket, None),
    ("reload_cmd", ReloadCmd, None),
    ("runtime_socket", RuntimeSocket, None),
    ("drain_grace", DrainGrace, None),
    ("check_cmd", CheckCmd, None),
    ("wait", Wait, None),
    ("gate_share", GateShare, None),
    ("gate_grace", GateGrace, None),
    ("when_empty", WhenEmpty, None),
    ("watch_mode", WatchMode, None),
    ("discover", Discover, False),
    ("overrides_prefix", OverridesPrefix, None),
    ("failover_dc", FailoverDc, None),
    ("consul_addr", ConsulAddr, None),
    ("log_format", LogFormat, None),
    ("verbose", Verbose, False),
)


@dataclass(frozen=True)
class WatchOptions:
    """The shared options as given on the command line (None or False: not given)."""

    given: Mapping[str, Any]

    def resolve(self, **own: Any) -> dict[str, Any]:
        """These and the command's ``own`` options, with ``--config``'s file under them and the defaults
        under that (:func:`resolve_options`)."""
        given = dict(self.given)
        return resolve_options(given.pop("config"), **given, **own)


def watch_options(own_before: str = "consul_addr") -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command ``f(options: WatchOptions, *own)`` the shared parameters: Typer sees them, in
    :data:`SHARED`'s order, with ``f``'s own parameters inserted before ``own_before``."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in list(inspect.signature(command, eval_str=True).parameters.values())[1:]
        ]
        shared = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a) for n, a, d in SHARED]
        at = next(i for i, p in enumerate(shared) if p.name == own_before)
        params = [*shared[:at], *own, *shared[at:]]

        @wraps(command)
        def typer_command(**kwargs: Any) -> None:
            given = {name: kwargs.pop(name) for name, _, _ in SHARED}
            command(WatchOptions(given), **kwargs)

        typer_command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        typer_command.__annotations__ = {p.name: p.annotation for p in params}
        del typer_command.__wrapped__  # Typer reads this signature, not the command's
        return typer_command

    return decorate


Json = Annotated[bool, typer.Option("--json", help="JSON instead of text, for scripts.")]
AskWatcher = Annotated[
    str | None,
    typer.Option(
        "--listen", metavar="ADDR:PORT", help="The running watcher's --listen address, to ask it about gate holds."
    ),
]
