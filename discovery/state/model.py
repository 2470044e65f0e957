"""The desired state: plain frozen values, sorted, so that "did anything change?" is ``==``.

Nothing here does I/O.  Every value in these objects has already passed the
checks in :mod:`discovery.state.checks` (names, tags, meta), :mod:`discovery.state.routes`
(route tags) or :mod:`discovery.state.service_settings` (``disco-*`` meta), so a
template can put any of them into a config line unescaped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .split import Split


@dataclass(frozen=True, order=True)
class Route:
    """One checked route, from a tag in fabio's syntax (``urlprefix-shop.example.com/api strip=/api``).

    HTTP routes have a ``path`` (and maybe a ``host``: exact, or ``*.example.com``);
    a TCP route has only ``tcp_port``.
    """

    host: str = ""  # "" (any host), "shop.example.com" or "*.example.com"; lower case
    path: str = "/"  # a path prefix matched at a segment boundary ("" for TCP routes)
    strip: str = ""  # prefix removed before the request reaches the backend
    redirect_code: int = 0  # with redirect_url: answer with this redirect instead of proxying
    redirect_url: str = ""  # may end in "$path": the original path is appended
    tcp_port: int = 0  # a TCP route: HAProxy listens on this port in TCP mode

    @property
    def tcp(self) -> bool:
        return self.tcp_port > 0

    def describe(self) -> str:
        """The route as its tag spells it (without ``urlprefix-``), for log lines."""
        if self.tcp:
            return f":{self.tcp_port} proto=tcp"
        text = f"{self.host}{self.path}"
        if self.strip:
            text += f" strip={self.strip}"
        if self.redirect_code:
            text += f" redirect={self.redirect_code},{self.redirect_url}"
        return text

    def as_context(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "wildcard": self.host.startswith("*."),
            "path": self.path,
            "strip": self.strip,
            "redirect_code": self.redirect_code,
            "redirect_url": self.redirect_url,
            "tcp_port": self.tcp_port,
            "text": self.describe(),
        }


@dataclass(frozen=True)
class ServiceSettings:
    """Per-service settings from ``disco-*`` meta, agreed on by the instances (majority)."""

    check: str = ""  # "" (the template's default), an HTTP path, "tcp" or "none"
    balance: str = ""  # "" (roundrobin), roundrobin, leastconn, first, random, source
    sticky: str = ""  # a cookie name: sticky sessions by cookie
    maxconn: int = 0  # per server; 0: no limit set
    https_only: bool = False  # plain HTTP on this service's routes answers 301 to HTTPS
    idle_timeout: str = ""  # TCP routes: "" (the operator's default), "none" or an HAProxy time ("90s")
    #: ``disco-split``: shares of new requests by tag (:mod:`discovery.state.split`); None: no split.
    split: Split | None = None
    #: Routes an operator override took out of the routing rules (:mod:`discovery.state.overrides`).
    disabled_routes: tuple[Route, ...] = ()

    def as_context(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "balance": self.balance,
            "sticky": self.sticky,
            "maxconn": self.maxconn,
            "https_only": self.https_only,
            "split": str(self.split) if self.split else "",
            "idle_timeout": self.idle_timeout,
        }


@dataclass(frozen=True, order=True, slots=True)
class Instance:
    """One healthy (or at least listed) instance of a service, as HAProxy will see it."""

    id: str
    node: str
    address: str
    port: int
    #: The HAProxy server name: the service ID, made unique within its backend.
    name: str = ""
    tags: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()
    health: str = "passing"
    #: ``disco-weight`` meta (0-256); None: HAProxy's default.
    weight: int | None = None
    #: tag ``backup``: served only when no other server of the backend is up.
    backup: bool = False
    #: The routes this instance's tags declare (the service's routes are what most instances say).
    routes: tuple[Route, ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.id)

    def as_context(self) -> dict[str, Any]:
        """Plain data for the template: meta becomes a dict so templates can ``.get()`` it."""
        return {
            "id": self.id,
            "name": self.name,
            "node": self.node,
            "address": self.address,
            "port": self.port,
            "tags": list(self.tags),
            "meta": dict(self.meta),
            "health": self.health,
            "weight": self.weight,
            "backup": self.backup,
        }


@dataclass(frozen=True)
class Service:
    """A watched service and its instances, sorted by server name; its routes and settings."""

    name: str
    instances: tuple[Instance, ...] = ()
    #: Sorted; empty: the default route (``Host`` equal to the service name).
    routes: tuple[Route, ...] = ()
    settings: ServiceSettings = ServiceSettings()

    @property
    def tcp(self) -> bool:
        """A TCP service (a ``proto=tcp`` route): a TCP backend, no HTTP routes."""
        return any(r.tcp for r in self.routes)

    def as_context(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "instances": [i.as_context() for i in self.instances],
            "routes": [r.as_context() for r in self.routes],
            "settings": self.settings.as_context(),
            "tcp": self.tcp,
            "cookie_key": self.cookie_key,
        }

    @property
    def cookie_key(self) -> str:
        """HAProxy's ``dynamic-cookie-key`` for sticky sessions: derived from the name, so every
        reload (and every disco in front of the same service) computes the same cookies."""
        return hashlib.sha256(f"disco dynamic cookie {self.name}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class DesiredState:
    """Everything the config is rendered from: the services, in the order they were asked for
    (``--service`` names first, then the discovered ones by name)."""

    services: tuple[Service, ...] = field(default_factory=tuple)
    #: Services followed only for their route tags (``--discover``): never the default backend.
    discovered: frozenset[str] = frozenset()

    @cached_property
    def server_count(self) -> int:
        return sum(map(len, map(attrgetter("instances"), self.services)))  # C-level: called every pass

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def summary(self) -> str:
        """For log lines: ``2 backends, 5 servers``."""
        return f"{len(self.services)} backends, {self.server_count} servers"
