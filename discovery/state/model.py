"""The desired state: plain frozen values, sorted, so that "did anything change?" is ``==``.

Nothing here does I/O.  Every value in these objects has already passed the
checks in :mod:`discovery.names`, so a template can put any of them into a config
line unescaped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, order=True)
class Instance:
    """One healthy (or at least listed) instance of a service, as HAProxy will see it."""

    id: str
    node: str
    address: str
    port: int
    #: The HAProxy server name: the service ID, made unique within its backend.
    name: str = ""
    tags: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()
    health: str = "passing"

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.id)

    def as_context(self) -> dict[str, Any]:
        """Plain data for the template: meta becomes a dict so templates can ``.get()`` it."""
        return {"id": self.id, "name": self.name, "node": self.node, "address": self.address,
                "port": self.port, "tags": list(self.tags), "meta": dict(self.meta),
                "health": self.health}


@dataclass(frozen=True)
class Service:
    """A watched service and its instances, sorted by server name."""

    name: str
    instances: tuple[Instance, ...] = ()

    def as_context(self) -> dict[str, Any]:
        return {"name": self.name, "instances": [i.as_context() for i in self.instances]}


@dataclass(frozen=True)
class DesiredState:
    """Everything the config is rendered from: the services, in the order they were asked for."""

    services: tuple[Service, ...] = field(default_factory=tuple)

    @property
    def server_count(self) -> int:
        return sum(len(s.instances) for s in self.services)

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def summary(self) -> str:
        """For log lines: ``2 backends, 5 servers``."""
        return f"{len(self.services)} backends, {self.server_count} servers"
