"""Every service's routes -> one routing table, most specific first, conflicts named.  Pure.

HAProxy takes the first ``use_backend`` rule that matches, so the order of the
rules is the precedence: an exact host before a wildcard host before no host
(a longer wildcard suffix first), then the longest path prefix.  A service with
no route tag keeps the default route: ``Host`` equal to its name, any path.
Requests no rule matches go to the first HTTP service (the first ``--service``); a service
followed only because it carries a route tag (``--discover``) is never that default: with
no ``--service``, HAProxy answers such requests with 503.

Two services claiming the same host and path (or the same TCP port) are a
conflict: the lowest service name wins, deterministically, and the conflict is a
note for the log rather than silently resolved.  TCP routes listen on a port of
their own, so only ports the operator allowed with ``--set tcp_ports=5000,9000-9010``
are used (fabio too needs TCP listeners configured): anyone who can register a
service must not be able to make HAProxy bind port 22, or a port it cannot get
(which would make every reload fail).

A TCP route has no idle timeout, as in fabio (a database's idle connections stay
open; HTTP's ``timeout client/server`` do not apply): HAProxy's longest timeout,
about 24 days, stands for none, with TCP keep-alive so the kernel still finds dead
peers.  The operator may set one for every TCP route (``--set tcp_idle_timeout=1h``)
and a service for its own (meta ``disco-idle-timeout``, ``none`` included).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import TemplateError
from .model import Route, Service
from .routes import redirect_target
from .service_settings import idle_timeout

#: What an idle timeout of "none" is written as: HAProxy's largest (a timeout of 0 is "missing").
NO_IDLE_TIMEOUT = "24d"


@dataclass(frozen=True)
class Rule:
    """One HTTP route of one service, with its place in the precedence (``id``: r1, r2, ...)."""

    id: str
    service: str
    route: Route
    https_only: bool = False
    default: bool = False  # the implied route of a service without route tags

    def as_context(self) -> dict[str, Any]:
        return {
            **self.route.as_context(),
            "id": self.id,
            "service": self.service,
            "https_only": self.https_only,
            "default": self.default,
            "exact_path": not self.route.path.endswith("/"),
            **self.redirect_context(),
        }

    def redirect_context(self) -> dict[str, Any]:
        """``redirect_location`` (an HAProxy log-format string) and ``redirect_self``: on the
        frontend of scheme ``scheme``, a request whose Host is one of ``hosts`` and whose path is
        ``path`` ("": any) would be redirected onto itself, so the route does not take it."""
        if not self.route.redirect_code:
            return {"redirect_location": "", "redirect_self": None}
        target = redirect_target(self.route.redirect_url)
        path = target.self_path
        loop = None if path is None else {"scheme": target.scheme, "hosts": list(target.hosts), "path": path}
        return {"redirect_location": target.location, "redirect_self": loop}


@dataclass(frozen=True)
class Table:
    http: tuple[Rule, ...] = ()
    tcp: tuple[tuple[int, str], ...] = ()  # (port, service), by port
    default_backend: str | None = None  # the first HTTP service
    default_https_only: bool = False
    notes: tuple[str, ...] = field(default=(), compare=False)
    #: Every TCP service's idle timeout, as HAProxy writes it (service, time), by service.
    tcp_timeouts: tuple[tuple[str, str], ...] = ()

    def as_context(self) -> dict[str, Any]:
        timeouts = dict(self.tcp_timeouts)
        return {
            "http": [r.as_context() for r in self.http],
            "tcp": [{"port": port, "service": svc, "idle_timeout": timeouts[svc]} for port, svc in self.tcp],
            "tcp_idle_timeout": timeouts,
            "default_backend": self.default_backend,
            "default_https_only": self.default_https_only,
        }


def parse_ports(text: str) -> frozenset[int]:
    """``5000,9000-9010`` -> the ports; raises TemplateError (an operator's mistake) on anything else."""
    ports: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise TemplateError(f"tcp_ports: {part!r} is not a port or a range LOW-HIGH")
        a, b = int(low), int(high or low)
        if not 1 <= a <= b <= 65535:
            raise TemplateError(f"tcp_ports: {part!r} is outside 1..65535")
        ports.update(range(a, b + 1))
    return frozenset(ports)


def tcp_idle_timeout(values: Mapping[str, Any]) -> str:
    """``--set tcp_idle_timeout`` (default none) checked; raises TemplateError on a bad value."""
    text = str(values.get("tcp_idle_timeout", "none"))
    if idle_timeout(text) is None:
        raise TemplateError(f"tcp_idle_timeout: {text!r} is not none or a time like 90s, 30m, 2h, 1d (at most 24d)")
    return text


def reserved_ports(values: Mapping[str, Any]) -> dict[int, str]:
    """The ports the bundled template binds itself (same defaults as the template)."""
    taken = {}
    for key, default in (("frontend_port", 80), ("stats_port", 1936), ("https_port", 443)):
        if key == "https_port" and "tls_cert_dir" not in values:
            continue
        value = str(values.get(key, default))
        if value.isdigit():
            taken[int(value)] = key
    return taken


def precedence(rule: Rule) -> tuple[Any, ...]:
    route = rule.route
    kind = 2 if not route.host else 1 if route.host.startswith("*.") else 0
    return (kind, -len(route.host), -len(route.path), route.path, route.host, rule.service)


def table(
    services: Sequence[Service], values: Mapping[str, Any] | None = None, discovered: Collection[str] = frozenset()
) -> Table:
    values = values or {}
    allowed = parse_ports(str(values.get("tcp_ports", "")))
    idle = tcp_idle_timeout(values)
    timeouts = []
    reserved = reserved_ports(values)
    notes: list[str] = []
    claims: dict[tuple[str, str], list[Rule]] = {}
    ports: dict[int, list[str]] = {}
    for svc in sorted(services, key=lambda s: s.name):  # the lowest name claims first
        if svc.tcp:
            chosen = svc.settings.idle_timeout or idle
            timeouts.append((svc.name, NO_IDLE_TIMEOUT if chosen == "none" else chosen))
            for route in svc.routes:
                if route in svc.settings.disabled_routes:
                    continue  # taken out by an operator override
                if route.tcp_port in reserved:
                    notes.append(
                        f"{svc.name}: TCP route :{route.tcp_port} ignored: the port is HAProxy's "
                        f"{reserved[route.tcp_port]}"
                    )
                elif route.tcp_port not in allowed:
                    notes.append(f"{svc.name}: TCP route :{route.tcp_port} ignored: not in --set tcp_ports")
                else:
                    ports.setdefault(route.tcp_port, []).append(svc.name)
            continue
        routes: Iterable[Route] = svc.routes or (Route(host=svc.name.lower(), path="/"),)
        for route in (r for r in routes if r not in svc.settings.disabled_routes):
            rule = Rule("", svc.name, route, svc.settings.https_only, default=not svc.routes)
            claims.setdefault((route.host, route.path), []).append(rule)
    winners = []
    for (host, path), rules in claims.items():
        winners.append(rules[0])
        if len(rules) > 1:
            who = ", ".join(f"{r.service} ({r.route.describe()})" for r in rules)
            notes.append(f"route conflict on {host}{path}: claimed by {who}; {rules[0].service} wins")
    tcp = []
    for port, names in sorted(ports.items()):
        tcp.append((port, names[0]))
        if len(names) > 1:
            notes.append(f"route conflict on TCP port {port}: claimed by {', '.join(names)}; {names[0]} wins")
    ordered = sorted(winners, key=precedence)
    http = tuple(Rule(f"r{i}", r.service, r.route, r.https_only, r.default) for i, r in enumerate(ordered, 1))
    default = next((s for s in services if not s.tcp and s.name not in discovered), None)
    return Table(
        http,
        tuple(tcp),
        default.name if default else None,
        bool(default and default.settings.https_only),
        tuple(notes),
        tuple(timeouts),
    )
