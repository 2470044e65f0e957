"""What ``disco watch`` is asked to do, as one frozen value: the pipeline's input besides Consul."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..consul.watch import WatchTiming
from ..haproxy.master import Reloader
from ..haproxy.validate import Validator
from ..state.gate import GatePolicy
from .execute import ReloadRetry

__all__ = ["WatchConfig"]


@dataclass(frozen=True)
class WatchConfig:
    """Everything ``disco watch`` was asked to do."""

    services: tuple[str, ...]
    template: Path
    output: Path
    tag: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)
    wait: tuple[float, float] = (0.01, 1.0)
    validator: Validator | None = field(default_factory=Validator)
    reloader: Reloader | None = None
    timing: WatchTiming = field(default_factory=WatchTiming)
    retry: ReloadRetry = field(default_factory=ReloadRetry)
    #: HAProxy's admin socket: server-only changes go through the runtime API, without a reload.
    runtime_socket: Path | None = None
    #: How long a removed server may drain before it is deleted.
    drain_grace: float = 10.0
    #: ``service``: one blocking query per service, on one event loop (:mod:`discovery.consul.service_loop`);
    #: ``catalog``: two for the whole datacenter (:mod:`discovery.consul.catalog_watch`); ``auto``: the
    #: per-service watch when its long polls fit under the agent's connection limit (:mod:`discovery.consul.fit`).
    watch_mode: str = "auto"
    #: The sanity gate for changes that take away most of a service (:mod:`discovery.gate`).
    gate: GatePolicy = field(default_factory=GatePolicy)
    #: With ``once``: give up when Consul has not answered for every service by then.
    once_timeout: float = 30.0
    template_poll: float = 1.0
    #: Also follow every service with a route tag (:mod:`discovery.consul.discover`); implies ``catalog``.
    discover: bool = False
    #: Operator overrides: the Consul KV prefix followed (:mod:`discovery.state.overrides`); "": none.
    overrides_prefix: str = ""
    #: Failover datacenters, in order of preference: their instances of each followed service as backups.
    failover_dcs: tuple[str, ...] = ()
