"""Consul's answer -> instances HAProxy can use.  Pure: no I/O, no clock.

This is where untrusted catalog data is checked.  An instance whose ID, node or
address cannot be carried safely is skipped with one reason naming it; a tag or
meta entry that cannot be carried is dropped from that instance.  The rest of the
catalog is still applied: one bad registration must not stop the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import checks as names
from . import routes, service_settings
from .model import Instance, Service


@dataclass(frozen=True)
class Conversion:
    """The usable instances of one service and what was left out, one line each."""

    service: Service
    skipped: tuple[str, ...] = ()


def _health(entry: Mapping[str, Any]) -> str:
    """Aggregate check status the way Consul does: the worst one wins."""
    order = {"passing": 0, "warning": 1, "critical": 2, "maintenance": 3}
    worst = "passing"
    for chk in entry.get("Checks") or ():
        status = chk.get("Status", "critical") if isinstance(chk, Mapping) else "critical"
        if order.get(status, 2) > order[worst]:
            worst = status if status in order else "critical"
    return worst


def _instance(service_name: str, entry: Mapping[str, Any], notes: list[str]) -> Instance | None:
    svc = entry.get("Service") or {}
    node = entry.get("Node") or {}
    sid, node_name = svc.get("ID"), node.get("Node")
    address = svc.get("Address") or node.get("Address")
    port = svc.get("Port")
    label = f"{service_name} instance {names.show(sid)} on node {names.show(node_name)}"
    for reason in (names.check(names.SERVER_NAME, sid, "ID"),
                   names.check(names.SERVER_NAME, node_name, "node name"),
                   names.check_address(address), names.check_port(port)):
        if reason:
            notes.append(f"skipped {label}: {reason}")
            return None
    tags = []
    raw_tags = svc.get("Tags") or ()
    for tag in raw_tags:
        if routes.is_route_tag(tag):  # route tags have their own grammar (routes.py)
            continue
        reason = names.check(names.TAG, tag, "tag")
        if reason:
            notes.append(f"dropped from {label}: {reason}")
        else:
            tags.append(tag)
    meta = []
    raw_meta = svc.get("Meta") or {}
    for key, value in (raw_meta.items() if isinstance(raw_meta, Mapping) else ()):
        reason = names.check(names.META_KEY, key, "meta key") or names.check(names.META_VALUE, value, "meta value")
        if reason:
            notes.append(f"dropped from {label}: {reason}")
        else:
            meta.append((key, value))
    return Instance(id=sid, node=node_name, address=address, port=port, tags=tuple(sorted(set(tags))),
                    meta=tuple(sorted(meta)), health=_health(entry),
                    routes=routes.parse_tags([t for t in raw_tags if routes.is_route_tag(t)], label, notes))


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
        result[name] = replace(inst, name=name)
    return [result[k] for k in sorted(result)]


def convert(service_name: str, entries: Iterable[Mapping[str, Any]]) -> Conversion:
    """Turn ``/v1/health/service/NAME`` entries into a sorted :class:`Service`."""
    notes: list[str] = []
    found = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            notes.append(f"skipped {service_name} entry: not an object")
            continue
        inst = _instance(service_name, entry, notes)
        if inst is not None:
            found.append(inst)
    instances = _unique_names(found, notes, service_name)
    # Routes, disco-* settings, weights and backups (their grammars and the majority rule live there).
    return Conversion(service_settings.build(service_name, instances, notes), tuple(notes))
