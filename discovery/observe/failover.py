"""Failover datacenters for ``disco status``: each one asked once (``?dc=``), its instances named as
the watcher names them (:mod:`discovery.state.failover`).  Read-only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import CatalogError
from ..state.convert import convert
from ..state.failover import is_failover, merge
from ..state.model import Service


def with_failover(
    catalog: Any,
    local: Service,
    dcs: Sequence[str],
    in_file: Mapping[str, str],
    notes: list[str],
) -> tuple[Service, dict[str, str]]:
    """``local`` with the failover instances appended as the watcher would, and the servers of a
    datacenter that does not answer (``in_file``: server -> address in the config file), which the
    watcher keeps: name -> address, so status does not call them pending."""
    views: dict[str, Service | None] = {}
    kept: dict[str, str] = {}
    for dc in dcs:
        try:
            _, entries = catalog.health_service_dc(local.name, dc, index=0, wait=0)
        except CatalogError as exc:
            views[dc] = None
            notes.append(f"failover datacenter {dc} does not answer for {local.name}: {exc}; last known instances kept")
            kept.update({n: a for n, a in in_file.items() if is_failover(n, (dc,)) == dc})
            continue
        views[dc] = convert(local.name, list(entries), passing_only=True).service
    return merge(local, views, dcs, notes), kept
