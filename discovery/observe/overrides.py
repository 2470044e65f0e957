"""Operator overrides for ``disco status`` and ``disco explain``: read once from Consul KV (no
blocking), checked by the watcher's own rules (:mod:`discovery.state.overrides`).  Read-only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import CatalogError
from ..state.overrides import DRAIN, MAINT, Overrides, lines, read


@dataclass(frozen=True)
class Seen:
    """The overrides under the prefix, or why they could not be read."""

    prefix: str
    overrides: Overrides = field(default_factory=Overrides)
    error: str | None = None

    def lines(self, services: tuple[str, ...] | None = None) -> list[str]:
        if not self.prefix:
            return []
        if self.error:
            return [f"overrides under {self.prefix} unknown: {self.error}"]
        return lines(self.overrides, services)

    def admin(self, service: str, ids: Mapping[str, str]) -> dict[str, str]:
        """Server name -> ``drain`` or ``maint`` for ``service`` (``ids``: server name -> instance ID)."""
        ov = self.overrides.of(service)
        if ov is None:
            return {}
        out = {}
        for name, sid in ids.items():
            if ov.drain and {name, sid} & set(ov.drain):
                out[name] = DRAIN
            elif ov.disable and {name, sid} & set(ov.disable):
                out[name] = MAINT
        return out

    def reasons(self, service: str, sid: str, server: str = "") -> list[str]:
        """What the overrides do to one instance (by its ID or its server name), with the key they
        come from (for ``explain``)."""
        ov = self.overrides.of(service)
        if ov is None:
            return []
        note = f" ({ov.note})" if ov.note else ""
        out = []
        names = {sid, server or sid}
        if names & set(ov.drain):
            out.append(f"drained by operator override {ov.key}{note}: no new requests, sticky clients finish")
        if names & set(ov.disable):
            out.append(f"disabled (maintenance) by operator override {ov.key}{note}")
        pinned = dict(ov.weight)
        weight = pinned.get(server, pinned.get(sid))
        if weight is not None:
            out.append(f"weight pinned to {weight} by operator override {ov.key}{note}")
        if ov.disable_routes:
            out.append(f"routes {', '.join(ov.disable_routes)} taken out by operator override {ov.key}{note}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "error": self.error,
            "in_force": [{"key": o.key, "service": o.service, "override": o.describe()} for o in self.overrides.items],
            "malformed": [{"key": k, "reason": r} for k, r in self.overrides.malformed],
        }


def seen(kv: Any, prefix: str) -> Seen:
    """One read of ``prefix`` (``kv``: a :class:`~discovery.consul.client.ConsulClient`); "" reads nothing."""
    if not prefix:
        return Seen(prefix)
    try:
        _, entries = kv.kv_prefix(prefix, index=0, wait=0)
    except CatalogError as exc:
        return Seen(prefix, error=str(exc))
    return Seen(prefix, read(prefix, entries))
