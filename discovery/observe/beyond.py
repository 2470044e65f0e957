"""What ``disco plan`` adds to a state read once, as ``disco watch`` would: failover datacenters'
instances as backups and operator overrides (one read each, no blocking).  Read-only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..state.model import DesiredState
from ..state.overrides import apply
from .failover import with_failover
from .overrides import seen


def beyond(
    catalog: Any,
    config: Any,
    state: DesiredState,
    notes: list[str],
    in_file: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[DesiredState, dict[Any, str], dict[str, dict[str, str]]]:
    """``state`` with failover instances and overrides in; the runtime states the overrides ask for;
    and, by backend, the servers of a failover datacenter that does not answer, which the watcher
    keeps as the file has them (``in_file``: backend -> server -> address)."""
    dcs = tuple(getattr(config, "failover_dcs", ()))
    kept: dict[str, dict[str, str]] = {}
    if dcs:
        services = []
        for svc in state.services:  # every followed service, discovered ones too
            svc, kept[svc.name] = with_failover(catalog, svc, dcs, (in_file or {}).get(svc.name, {}), notes)
            services.append(svc)
        state = DesiredState(tuple(services), state.discovered)
    overrides = seen(catalog, getattr(config, "overrides_prefix", ""))
    notes += overrides.lines()
    applied = apply(state, overrides.overrides)
    notes += [f"override {note}" for note in applied.unmatched]
    return applied.state, dict(applied.admin), kept
