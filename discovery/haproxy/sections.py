"""The names a template gives its own sections, and the catalog names that would take one.  Pure.

HAProxy keeps one namespace for its proxies: a ``backend stats`` beside the template's
``listen stats`` makes the whole config invalid, so one service registered as ``stats``
(with a route tag, under ``--discover``) would freeze every later update.  The template's
own names are not a fixed list in disco: they are read from the template, by rendering it
(:meth:`~discovery.haproxy.render.Renderer.own_sections`) once with no discovered service
and once with two probe services (one HTTP, one with a TCP route on every port ``--set
tcp_ports`` allows, so ``tcp-PORT`` frontends show up), and taking every ``frontend``,
``backend``, ``listen`` and ``defaults`` header whose name is neither a probe's nor a
``--service`` name.  That works for a user's template too, whatever it calls its sections.

A discovered service whose name is one of them is refused: one log line, and every other
service goes on.  Refusing (rather than renaming every backend, ``be-NAME``) keeps backend
names what users see in Consul, on the stats page and in ``disco status``.  HAProxy itself
would allow a frontend and a backend of the same name; disco refuses that too, because the
stats page, the logs and the runtime API would then show two proxies under one name.  A
``--service`` name is the operator's choice, not catalog data: it is not refused here, and
``haproxy -c`` names the clash if there is one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..state.model import DesiredState, Route, Service

#: Section headers that name a proxy (or a defaults section proxies may refer to).
HEADER = re.compile(r"^(frontend|backend|listen|defaults)[ \t]+([^\s#]+)", re.MULTILINE)
#: The probe services' names share this marker, so sections derived from them are recognised.
MARKER = "discoprobe"
PROBE_HTTP, PROBE_TCP = f"{MARKER}http", f"{MARKER}tcp"


def headers(text: str) -> Iterable[tuple[str, str]]:
    """Every (kind, name) section header of a config, in order."""
    for match in HEADER.finditer(text):
        yield match[1], match[2]


def probe_states(explicit: Iterable[str], tcp_ports: Iterable[int]) -> tuple[DesiredState, ...]:
    """The states the template is rendered with to find its own sections: the ``--service``
    names (a template may name them), without and with the probes."""
    named = tuple(Service(name) for name in explicit)
    tcp = Service(PROBE_TCP, routes=tuple(Route(path="", tcp_port=p) for p in sorted(tcp_ports)))
    probes = (Service(PROBE_HTTP), tcp) if tcp.routes else (Service(PROBE_HTTP),)
    return DesiredState(named), DesiredState(named + probes, frozenset({PROBE_HTTP, PROBE_TCP}))


def own_sections(texts: Iterable[str], explicit: Iterable[str]) -> dict[str, str]:
    """The template's own section names in the probe renders -> their header (``listen stats``)."""
    services = set(explicit)
    found: dict[str, str] = {}
    for text in texts:
        for kind, name in headers(text):
            if name not in services and MARKER not in name.lower():
                found.setdefault(name, f"{kind} {name}")
    return found


@dataclass(frozen=True)
class Admission:
    """The state a template can carry, and each refused service with its reason (one line each)."""

    state: DesiredState
    refused: tuple[tuple[str, str], ...] = ()


def admit(state: DesiredState, own: Mapping[str, str]) -> Admission:
    """Drop the discovered services whose name is one of the template's own sections."""
    refused = {
        svc.name: f"service {svc.name!r} refused: its backend would take the name of the template's own "
        f"section `{own[svc.name]}`"
        for svc in state.services
        if svc.name in state.discovered and svc.name in own
    }
    if not refused:
        return Admission(state)
    kept = tuple(s for s in state.services if s.name not in refused)
    return Admission(DesiredState(kept, state.discovered - refused.keys()), tuple(sorted(refused.items())))
