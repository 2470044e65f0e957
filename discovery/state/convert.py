"""Consul's answer -> instances HAProxy can use.  Pure: no I/O, no clock.

This is where untrusted catalog data is checked.  An instance whose ID, node or
address cannot be carried safely is skipped with one reason naming it; a tag or
meta entry that cannot be carried is dropped from that instance.  The rest of the
catalog is still applied: one bad registration must not stop the others.

With ``passing_only`` (what the watches use: they read every instance, whatever its
checks say, so that the catalog can be counted by status), instances whose checks
are not all passing are left out too.  :func:`refusal`, :func:`status` and
:func:`failing_checks` say why one entry is left out; ``disco explain`` calls the
same functions, so what it says is what the watcher does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import checks as names
from . import routes, service_settings
from .model import Instance, Service

#: Why an instance Consul lists is not routed (the ``reason`` label of the left-out metric).
REFUSED, NOT_PASSING, MAINTENANCE, DUPLICATE = "refused", "not_passing", "maintenance", "duplicate"
STATUSES = ("passing", "warning", "critical", "maintenance")
#: Consul's maintenance mode is a critical check with one of these IDs.
MAINTENANCE_CHECKS = ("_service_maintenance:", "_node_maintenance")


@dataclass(frozen=True)
class Conversion:
    """The usable instances of one service and what was left out, one line each.

    ``statuses`` counts every entry Consul listed by :func:`status`; ``left_out`` counts
    the entries not routed by reason (:data:`REFUSED`, :data:`NOT_PASSING`, ...).
    """

    service: Service
    skipped: tuple[str, ...] = ()
    statuses: tuple[tuple[str, int], ...] = ()
    left_out: tuple[tuple[str, int], ...] = ()


def _checks(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c if isinstance(c, Mapping) else {} for c in entry.get("Checks") or ()]


def in_maintenance(entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The maintenance check of an instance or its node, if either is in maintenance mode."""
    return next((c for c in _checks(entry) if str(c.get("CheckID", "")).startswith(MAINTENANCE_CHECKS)), None)


def status(entry: Mapping[str, Any]) -> str:
    """Aggregate check status the way Consul does (the worst one wins); ``maintenance`` before all."""
    if in_maintenance(entry) is not None:
        return "maintenance"
    order = {"passing": 0, "warning": 1, "critical": 2}
    worst = "passing"
    for chk in _checks(entry):
        value = chk.get("Status", "critical")
        value = value if value in order else "critical"
        if order[value] > order[worst]:
            worst = value
    return worst


def failing_checks(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The checks that are not passing, maintenance ones aside (``CheckID``, ``Name``, ``Status``, ``Output``)."""
    return [
        c
        for c in _checks(entry)
        if c.get("Status") != "passing" and not str(c.get("CheckID", "")).startswith(MAINTENANCE_CHECKS)
    ]


def _fields(entry: Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
    svc, node = entry.get("Service") or {}, entry.get("Node") or {}
    return svc.get("ID"), node.get("Node"), svc.get("Address") or node.get("Address"), svc.get("Port")


def refusal(entry: Mapping[str, Any]) -> str | None:
    """Why the catalog checks refuse this entry (the field and what is wrong with it), or None."""
    sid, node_name, address, port = _fields(entry)
    for reason in (
        names.check(names.SERVER_NAME, sid, "ID"),
        names.check(names.SERVER_NAME, node_name, "node name"),
        names.check_address(address),
        names.check_port(port),
    ):
        if reason:
            return reason
    return None


def label(service_name: str, entry: Mapping[str, Any]) -> str:
    sid, node_name, _, _ = _fields(entry)
    return f"{service_name} instance {names.show(sid)} on node {names.show(node_name)}"


def _instance(service_name: str, entry: Mapping[str, Any], notes: list[str], health: str) -> Instance | None:
    svc = entry.get("Service") or {}
    sid, node_name, address, port = _fields(entry)
    reason = refusal(entry)
    if reason:
        notes.append(f"skipped {label(service_name, entry)}: {reason}")
        return None
    tags = []
    raw_tags = svc.get("Tags") or ()
    for tag in raw_tags:
        if routes.is_route_tag(tag):  # route tags have their own grammar (routes.py)
            continue
        reason = names.check(names.TAG, tag, "tag")
        if reason:
            notes.append(f"dropped from {label(service_name, entry)}: {reason}")
        else:
            tags.append(tag)
    meta = []
    raw_meta = svc.get("Meta") or {}
    for key, value in raw_meta.items() if isinstance(raw_meta, Mapping) else ():
        reason = names.check(names.META_KEY, key, "meta key") or names.check(names.META_VALUE, value, "meta value")
        if reason:
            notes.append(f"dropped from {label(service_name, entry)}: {reason}")
        else:
            meta.append((key, value))
    route_tags = [t for t in raw_tags if routes.is_route_tag(t)]
    return Instance(
        id=sid,
        node=node_name,
        address=address,
        port=port,
        tags=tuple(sorted(set(tags))),
        meta=tuple(sorted(meta)),
        health=health,
        routes=routes.parse_tags(route_tags, label(service_name, entry), notes),
    )


def _unique_names(instances: list[Instance], notes: list[str], service_name: str) -> list[Instance]:
    """Service IDs are unique per agent only: qualify clashing ones with their node."""
    counts: dict[str, int] = {}
    for inst in instances:
        counts[inst.id] = counts.get(inst.id, 0) + 1
    result: dict[str, Instance] = {}
    for inst in instances:
        name = inst.id if counts[inst.id] == 1 else f"{inst.node}:{inst.id}"
        if name in result or len(name) > 127:
            notes.append(f"skipped {service_name} instance {inst.id!r} on node {inst.node!r}: duplicate ID")
            continue
        result[name] = inst if inst.name == name else replace(inst, name=name)
    return [result[k] for k in sorted(result)]


def convert(service_name: str, entries: Iterable[Any], *, passing_only: bool = False) -> Conversion:
    """Turn ``/v1/health/service/NAME`` entries into a sorted :class:`Service`.

    With ``passing_only``, instances whose checks are not all passing are left out (as
    Consul's ``?passing`` would), and counted in ``left_out``.
    """
    notes: list[str] = []
    found = []
    statuses = dict.fromkeys(STATUSES, 0)
    left_out: dict[str, int] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            notes.append(f"skipped {service_name} entry: not an object")
            left_out[REFUSED] = left_out.get(REFUSED, 0) + 1
            continue
        health = status(entry)
        statuses[health] += 1
        if passing_only and health != "passing":
            why = MAINTENANCE if health == "maintenance" else NOT_PASSING
            left_out[why] = left_out.get(why, 0) + 1
            continue
        inst = _instance(service_name, entry, notes, health)
        if inst is None:
            left_out[REFUSED] = left_out.get(REFUSED, 0) + 1
        else:
            found.append(inst)
    unique = _unique_names(found, notes, service_name)
    if len(unique) < len(found):
        left_out[DUPLICATE] = len(found) - len(unique)
    # Routes, disco-* settings, weights and backups (their grammars and the majority rule live there).
    return Conversion(
        service_settings.build(service_name, unique, notes),
        tuple(notes),
        tuple(statuses.items()),
        tuple(sorted(left_out.items())),
    )
