"""What ``disco plan`` adds to a state read once, as ``disco watch`` would: failover datacenters'
instances as backups and operator overrides (one read each, no blocking).  Read-only."""

from __future__ import annotations

from typing import Any

from ..state.model import DesiredState
from ..state.overrides import apply
from .failover import with_failover
from .overrides import seen


def beyond(catalog: Any, config: Any, state: DesiredState, notes: list[str]) -> tuple[DesiredState, dict[Any, str]]:
    """``state`` with failover instances and overrides in; the runtime states the overrides ask for."""
    dcs = tuple(getattr(config, "failover_dcs", ()))
    if dcs:
        services = []
        for svc in state.services:
            merged = with_failover(catalog, svc, dcs, {}, notes)[0] if svc.name in config.services else svc
            services.append(merged)
        state = DesiredState(tuple(services), state.discovered)
    overrides = seen(catalog, getattr(config, "overrides_prefix", ""))
    notes += overrides.lines()
    applied = apply(state, overrides.overrides)
    notes += [f"override {note}" for note in applied.unmatched]
    return applied.state, dict(applied.admin)
