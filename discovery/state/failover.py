"""Failover datacenters: their names' grammar, and how their instances join a local service.  Pure.

``--failover-dc dc2 --failover-dc dc3`` (order is preference): the passing instances of each
followed service in those datacenters become *backup* servers of its backend, after the local
ones, dc2's before dc3's.  HAProxy sends a backup traffic only while no local (non-backup)
server is up, and takes it back when one is; without ``option allbackups`` it uses the first
backup that is up, so the order of the datacenters is the order of preference.

A failover server is named ``DC:NAME`` (``dc2:web-1``, or ``dc2:node:web-1`` when IDs clash in
dc2).  Local names are service IDs (or ``NODE:ID``), which may contain ``:`` too, so a clash is
possible in principle (a local ID ``dc2:web-1``): the failover instance is then left out, with
one note, and the local one is untouched.  Nothing a failover datacenter answers ever removes or
changes a local instance: merging only appends backups.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from .checks import show
from .model import Instance, Service

#: Consul datacenter names: letters, digits, ``_`` and ``-`` (no ``.`` or ``:``, which server names use).
DC = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def check_dc(name: object) -> str | None:
    """Why ``name`` cannot be a failover datacenter, or None."""
    if not isinstance(name, str) or DC.fullmatch(name) is None:
        return f"datacenter name {show(name)} must be letters, digits, _ and - (at most 64)"
    return None


def server_name(dc: str, instance: Instance) -> str:
    return f"{dc}:{instance.name}"


def merge(local: Service, remote: Mapping[str, Service | None], order: Sequence[str], notes: list[str]) -> Service:
    """``local`` with each datacenter's instances (in ``order``) appended as backups."""
    taken = {i.name for i in local.instances}
    extra: list[Instance] = []
    for dc in order:
        view = remote.get(dc)
        for inst in view.instances if view is not None else ():
            name = server_name(dc, inst)
            if name in taken or len(name) > 127:
                notes.append(
                    f"{local.name}: failover instance {inst.name!r} of {dc} left out: its name {name!r} is taken"
                )
                continue
            taken.add(name)
            extra.append(replace(inst, name=name, backup=True))
    if not extra:
        return local
    return replace(local, instances=local.instances + tuple(extra))


def is_failover(name: str, dcs: Sequence[str]) -> str | None:
    """The datacenter a server name belongs to (``dc2:web-1`` -> dc2), or None for a local one."""
    head = name.split(":", 1)[0]
    return head if ":" in name and head in dcs else None
