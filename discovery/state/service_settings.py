"""``disco-*`` service meta and the ``backup`` tag -> checked settings; instances agree by majority.  Pure.

Service settings (each instance carries them in its meta; Consul meta keys allow
letters, digits, ``_`` and ``-``):

    disco-check        HTTP check path (default: the template's, /health), ``tcp`` or ``none``
    disco-balance      roundrobin, leastconn, first, random or source
    disco-sticky       a cookie name (an RFC 6265 token, restricted to letters, digits and ``._-``)
    disco-maxconn      per-server connection limit, 1-100000
    disco-https-only   ``true``: plain HTTP on the service's routes answers 301 to HTTPS
    disco-split        traffic split by tag, ``v2=5`` or ``v2=5,v3=20`` (:mod:`discovery.state.split`)
    disco-idle-timeout TCP routes: close a connection idle this long (``90s``, ``30m``, ``2h``,
                       ``1d``; at most 24d) or ``none``; by default a TCP route has no idle
                       timeout (as fabio), unless the operator sets ``--set tcp_idle_timeout``

Instance settings: ``disco-weight`` (0-256) and the tag ``backup``.

During a rolling deploy instances may disagree on a service setting (or on the
service's routes): the value most instances give wins, a tie goes to the value of
the lowest instance ID, and the disagreement becomes one note naming the
instances on each side.  A value outside its grammar is dropped from that
instance with one note (the instance then counts as not setting it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from . import split as splits
from .checks import show
from .model import Instance, Route, Service, ServiceSettings
from .routes import check_path

PREFIX = "disco-"
BALANCE = ("roundrobin", "leastconn", "first", "random", "source")
COOKIE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")
_INT = re.compile(r"0|[1-9][0-9]{0,5}")


def _check(value: str) -> str | None:
    if value in ("tcp", "none"):
        return value
    return value if check_path(value) is None else None


def _balance(value: str) -> str | None:
    return value if value in BALANCE else None


def _sticky(value: str) -> str | None:
    return value if COOKIE.fullmatch(value) else None


def _int_in(low: int, high: int) -> Callable[[str], int | None]:
    def parse(value: str) -> int | None:
        return int(value) if _INT.fullmatch(value) and low <= int(value) <= high else None

    return parse


def _boolean(value: str) -> bool | None:
    return {"true": True, "false": False}.get(value.lower())


_TIME = re.compile(r"([1-9][0-9]{0,9})(ms|s|m|h|d)")
_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
#: HAProxy's largest timeout (2^31-1 ms, about 24.8 days).
MAX_TIMEOUT_MS = 2**31 - 1


def idle_timeout(value: str) -> str | None:
    """``none`` or one HAProxy time (a number and one unit, ms to d, at most ~24.8 days)."""
    if value == "none":
        return value
    match = _TIME.fullmatch(value)
    if match is None or int(match[1]) * _MS[match[2]] > MAX_TIMEOUT_MS:
        return None
    return value


#: meta key -> (ServiceSettings field, parser returning None for a refused value, what is allowed)
SERVICE_KEYS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "disco-check": ("check", _check, "a path, tcp or none"),
    "disco-balance": ("balance", _balance, ", ".join(BALANCE)),
    "disco-sticky": ("sticky", _sticky, "a cookie name of letters, digits and ._-"),
    "disco-maxconn": ("maxconn", _int_in(1, 100_000), "1..100000"),
    "disco-https-only": ("https_only", _boolean, "true or false"),
    "disco-split": ("split", splits.parse, splits.ALLOWED),
    "disco-idle-timeout": ("idle_timeout", idle_timeout, "none or a time like 90s, 30m, 2h, 1d (at most 24d)"),
}
_WEIGHT = _int_in(0, 256)


def instance_settings(
    meta: Sequence[tuple[str, str]], label: str, notes: list[str]
) -> tuple[int | None, dict[str, Any]]:
    """An instance's ``disco-weight`` and its votes on service settings; refused values become notes."""
    weight: int | None = None
    votes: dict[str, Any] = {}
    for key, value in meta:
        if not key.startswith(PREFIX):
            continue
        if key == "disco-weight":
            weight = _WEIGHT(value)
            if weight is None:
                notes.append(f"setting dropped from {label}: disco-weight {show(value)} is not 0..256")
        elif key in SERVICE_KEYS:
            field, parse, allowed = SERVICE_KEYS[key]
            parsed = parse(value)
            if parsed is None:
                notes.append(f"setting dropped from {label}: {key} {show(value)} is not {allowed}")
            else:
                votes[field] = parsed
    return weight, votes


def majority(service: str, what: str, votes: dict[str, Any], notes: list[str]) -> Any:
    """The value most instances give (``votes``: instance ID -> value); a tie goes to the lowest ID's."""
    by_value: dict[Any, list[str]] = {}
    for sid in sorted(votes):
        by_value.setdefault(votes[sid], []).append(sid)
    if not by_value:
        return None
    ranked = sorted(by_value.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))
    winner = ranked[0][0]
    if len(ranked) > 1:
        sides = "; ".join(f"{_say(value)} ({', '.join(ids)})" for value, ids in ranked)
        notes.append(f"{service}: instances disagree on {what}: {sides}; using {_say(winner)}")
    return winner


def _say(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(r.describe() for r in value) + "]" if value else "no route tag"
    return "unset" if value in (None, "", 0) else str(value)


def build(name: str, instances: Sequence[Instance], notes: list[str]) -> Service:
    """The Service of ``instances`` (already checked and named): weights, backups, settings and routes.

    Called by :func:`discovery.state.convert.convert`; the notes go to the same log.
    """
    final: list[Instance] = []
    votes: dict[str, dict[str, Any]] = {}
    for inst in instances:
        label = f"{name} instance {inst.name!r}"
        weight, mine = instance_settings(inst.meta, label, notes)
        votes[inst.name] = mine
        final.append(replace(inst, weight=weight, backup="backup" in inst.tags))
    settings: dict[str, Any] = {}
    for key, (field, _, _) in SERVICE_KEYS.items():
        value = majority(name, key, {sid: v.get(field) for sid, v in votes.items()}, notes)
        if value is not None:
            settings[field] = value
    routes: tuple[Route, ...] = majority(name, "routes", {i.name: i.routes for i in final}, notes) or ()
    if any(r.tcp for r in routes) and any(not r.tcp for r in routes):
        notes.append(f"{name}: a proto=tcp route makes it a TCP service; its HTTP routes are ignored")
        routes = tuple(r for r in routes if r.tcp)
    if settings.get("idle_timeout") and not any(r.tcp for r in routes):
        notes.append(f"{name}: disco-idle-timeout applies to TCP routes (proto=tcp) only; ignored")
        del settings["idle_timeout"]
    result = ServiceSettings(**settings)
    if result.split is not None:  # weights from the counts on each side, once the majority has spoken
        final = list(splits.apply(name, result.split, final, notes))
    return Service(name, tuple(final), routes, result)
