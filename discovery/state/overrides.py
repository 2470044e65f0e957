"""Operator overrides from Consul KV: the documents' exact grammar, and what they do to the desired
state.  Pure: no I/O.

Each key under the prefix (default ``disco/overrides/``) is one service's override, the key's last
part being the service name (``disco/overrides/web``); its value is a small JSON object::

    {"drain": ["web-2"], "disable": ["web-3"], "weight": {"web-1": 10},
     "disable_routes": ["shop.example.com/api"], "note": "INC-42"}

Instances are named by their service ID (every instance with that ID, a failover datacenter's
too) or by their HAProxy server name (``dc2:web-1``, ``node-3:web-1``: that one only).

- ``drain``: instance IDs put in HAProxy's DRAIN state (no new requests, sticky clients and
  existing connections finish);
- ``disable``: instance IDs put in maintenance (MAINT: no traffic at all);
- ``weight``: instance ID -> a weight 0-256 pinned over ``disco-weight`` and ``disco-split``;
- ``disable_routes``: routes taken out of the routing rules, spelt ``HOST/PATH`` as the route tag
  has it without ``urlprefix-`` and options (``shop.example.com/api``, ``/api``), ``:PORT`` for a
  TCP route, the service's name and ``/`` for its default route, or ``*`` for all; its backend
  stays;
- ``note``: free text for whoever reads ``disco status`` (printable, at most 200 characters).

Every field is optional; any other field, a value of another type, an ID outside HAProxy's server
name characters, an ID both drained and disabled, a document over 16 KiB or not JSON makes the
document *malformed*: it is ignored as a whole (one reason naming the key) and the others still
apply.  An ID or a route that matches nothing is not an error (the instance may come back): it is
shown as such.  Nothing here reaches the config but weights (integers) and the choice of which
checked routes are rendered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .checks import SERVER_NAME, SERVICE_NAME, show
from .model import DesiredState, Instance, Route, Service

DEFAULT_PREFIX = "disco/overrides/"
#: A KV prefix disco may watch: path segments of safe characters (not ``.`` or ``..``), ending in ``/``.
PREFIX = re.compile(r"(?:(?!\.\.?/)[A-Za-z0-9_.-]+/)+")
MAX_BYTES = 16 * 1024
MAX_ITEMS = 1000
FIELDS = ("drain", "disable", "weight", "disable_routes", "note")
ROUTE_TEXT = re.compile(r"\*|:[0-9]{1,5}|(?:\*\.)?[A-Za-z0-9.-]{0,253}/[A-Za-z0-9._~/%-]{0,1024}")
NOTE = re.compile(r"[ -~]{0,200}")
#: What each kind does, for status, explain and the metrics' ``kind`` label.
KINDS = ("drain", "disable", "weight", "disable_routes")
DRAIN, MAINT = "drain", "maint"


class Malformed(ValueError):
    """A document outside the grammar; the message names what is wrong (not the key)."""


@dataclass(frozen=True)
class Override:
    """One checked document: the key it came from and what it asks for one service."""

    key: str
    service: str
    drain: tuple[str, ...] = ()
    disable: tuple[str, ...] = ()
    weight: tuple[tuple[str, int], ...] = ()
    disable_routes: tuple[str, ...] = ()
    note: str = ""

    def kinds(self) -> tuple[str, ...]:
        return tuple(kind for kind in KINDS if getattr(self, kind))

    def describe(self) -> str:
        """One line: ``drain web-2; weight web-1=10 (INC-42)``."""
        parts = []
        if self.drain:
            parts.append("drain " + ", ".join(self.drain))
        if self.disable:
            parts.append("disable " + ", ".join(self.disable))
        if self.weight:
            parts.append("weight " + ", ".join(f"{i}={w}" for i, w in self.weight))
        if self.disable_routes:
            parts.append("disable routes " + ", ".join(self.disable_routes))
        text = "; ".join(parts) or "nothing"
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True)
class Overrides:
    """Every document under the prefix: the checked ones by service, the malformed ones by key."""

    items: tuple[Override, ...] = ()
    malformed: tuple[tuple[str, str], ...] = ()

    def of(self, service: str) -> Override | None:
        return next((o for o in self.items if o.service == service), None)


def check_prefix(prefix: str) -> str | None:
    """Why ``prefix`` cannot be watched, or None (``""`` turns overrides off and is fine)."""
    if prefix == "" or PREFIX.fullmatch(prefix):
        return None
    return f"overrides prefix {show(prefix)} must be path segments of letters, digits and ._- ending in /"


def _ids(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise Malformed(f"{name} must be a list of instance IDs")
    for item in value:
        if not isinstance(item, str) or SERVER_NAME.fullmatch(item) is None:
            raise Malformed(f"{name}: {show(item)} is not an instance ID")
    return tuple(sorted(set(value)))


def _weights(value: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, dict) or len(value) > MAX_ITEMS:
        raise Malformed("weight must be an object of instance ID -> 0..256")
    for sid, weight in value.items():
        if SERVER_NAME.fullmatch(sid) is None:
            raise Malformed(f"weight: {show(sid)} is not an instance ID")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 256:
            raise Malformed(f"weight of {sid}: {show(weight)} is not an integer 0..256")
    return tuple(sorted(value.items()))


def _routes(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise Malformed("disable_routes must be a list of routes")
    for item in value:
        if not isinstance(item, str) or ROUTE_TEXT.fullmatch(item) is None:
            raise Malformed(f"disable_routes: {show(item)} is not HOST/PATH, :PORT or *")
    return tuple(sorted(set(value)))


def document(key: str, service: str, raw: bytes) -> Override:
    """Check one document; raises Malformed."""
    if len(raw) > MAX_BYTES:
        raise Malformed(f"larger than {MAX_BYTES} bytes")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Malformed(f"not JSON ({str(exc).splitlines()[0][:80]})") from None
    if not isinstance(doc, dict):
        raise Malformed("not a JSON object")
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        raise Malformed(f"unknown field {show(unknown[0])}: use {', '.join(FIELDS)}")
    note = doc.get("note", "")
    if not isinstance(note, str) or NOTE.fullmatch(note) is None:
        raise Malformed("note must be printable text of at most 200 characters")
    result = Override(
        key,
        service,
        drain=_ids(doc.get("drain", []), "drain"),
        disable=_ids(doc.get("disable", []), "disable"),
        weight=_weights(doc.get("weight", {})),
        disable_routes=_routes(doc.get("disable_routes", [])),
        note=note,
    )
    both = sorted(set(result.drain) & set(result.disable))
    if both:
        raise Malformed(f"{both[0]} is both drained and disabled")
    return result


def read(prefix: str, entries: Iterable[tuple[str, bytes | None]]) -> Overrides:
    """Every KV entry under ``prefix`` (key, value) -> the checked documents and the malformed ones."""
    items: list[Override] = []
    malformed: list[tuple[str, str]] = []
    for key, raw in sorted(entries, key=lambda e: e[0]):
        if not key.startswith(prefix) or (key.endswith("/") and not raw):
            continue  # a "folder" the consul CLI or UI made
        service = key[len(prefix) :]
        if SERVICE_NAME.fullmatch(service) is None:
            malformed.append((key, "the key must be the prefix followed by a service name"))
            continue
        try:
            items.append(document(key, service, raw or b""))
        except Malformed as exc:
            malformed.append((key, str(exc)))
    return Overrides(tuple(items), tuple(malformed))


def route_text(route: Route) -> str:
    return f":{route.tcp_port}" if route.tcp else f"{route.host}{route.path}"


def routes_of(service: Service) -> tuple[Route, ...]:
    """The service's routes, or the default route it has without route tags."""
    return service.routes or (Route(host=service.name.lower(), path="/"),)


@dataclass(frozen=True)
class Applied:
    """The state with the overrides in, the runtime states they ask for, and what matched nothing."""

    state: DesiredState
    #: (service, server name) -> ``drain`` or ``maint``.
    admin: Mapping[tuple[str, str], str] = field(default_factory=dict)
    unmatched: tuple[str, ...] = ()


def apply(state: DesiredState, overrides: Overrides) -> Applied:
    """Pin weights, take routes out, and list the servers to drain or disable."""
    if not overrides.items:
        return Applied(state)
    admin: dict[tuple[str, str], str] = {}
    unmatched: list[str] = []
    services = []
    for svc in state.services:
        ov = overrides.of(svc.name)
        if ov is None:
            services.append(svc)
            continue
        ids = {i.id for i in svc.instances} | {i.name for i in svc.instances}
        for sid in (*ov.drain, *ov.disable, *(i for i, _ in ov.weight)):
            if sid not in ids:
                unmatched.append(f"{ov.key}: {svc.name} has no instance {sid!r} now")
        pinned = dict(ov.weight)
        instances = tuple(_pin(i, pinned) for i in svc.instances)
        for inst in instances:
            if _named(inst, ov.drain):
                admin[(svc.name, inst.name)] = DRAIN
            elif _named(inst, ov.disable):
                admin[(svc.name, inst.name)] = MAINT
        off = _disabled(svc, ov, unmatched)
        settings = replace(svc.settings, disabled_routes=off) if off else svc.settings
        services.append(replace(svc, instances=instances, settings=settings))
    known = {s.name for s in state.services}
    unmatched += [f"{o.key}: no service {o.service!r} is followed" for o in overrides.items if o.service not in known]
    return Applied(replace(state, services=tuple(services)), admin, tuple(unmatched))


def _named(inst: Instance, ids: Sequence[str]) -> bool:
    """An override names an instance by its service ID (every instance with it, failover ones too)
    or by its HAProxy server name (``dc2:web-1``, ``node:web-1``: that one only)."""
    return inst.id in ids or inst.name in ids


def _pin(inst: Instance, pinned: Mapping[str, int]) -> Instance:
    weight = pinned.get(inst.name, pinned.get(inst.id))
    return inst if weight is None else replace(inst, weight=weight)


def _disabled(svc: Service, ov: Override, unmatched: list[str]) -> tuple[Route, ...]:
    routes = routes_of(svc)
    off: list[Route] = []
    for text in ov.disable_routes:
        hit = [r for r in routes if text in ("*", route_text(r))]
        if not hit:
            unmatched.append(f"{ov.key}: {svc.name} has no route {text!r}")
        off += hit
    return tuple(sorted(set(off)))


def in_force(overrides: Overrides) -> dict[str, int]:
    """How many documents in force carry each kind (the metrics' gauge)."""
    counts = dict.fromkeys(KINDS, 0)
    for ov in overrides.items:
        for kind in ov.kinds():
            counts[kind] += 1
    return counts


def lines(overrides: Overrides, services: Sequence[str] | None = None) -> list[str]:
    """For ``disco status``: one line per document in force (of ``services``), then the malformed ones."""
    shown = [o for o in overrides.items if services is None or o.service in services]
    out = [f"override {o.key}: {o.service}: {o.describe()}" for o in shown]
    out += [f"override {key} ignored: {reason}" for key, reason in overrides.malformed]
    return out
