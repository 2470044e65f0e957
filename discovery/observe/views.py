"""The three places a server lives, read once each, and their comparison (:mod:`.compare`).

:func:`observe` is the one entry point ``disco status``, ``plan`` and ``explain`` (and a dashboard)
call: Consul read once and converted as the watches do (failover datacenters and operator overrides
applied as the watcher applies them), rendered with the watcher's template and values; the config
file; HAProxy's runtime state (``show servers state`` and ``show stat``).  It returns frozen values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..consul.client import Catalog
from ..consul.discover import read_followed
from ..errors import LiveUpdateFailed, TemplateError
from ..haproxy.files import LiveConfig
from ..haproxy.plan import parse
from ..haproxy.render import Renderer
from ..haproxy.runtime import RuntimeAPI, ServerState
from ..state.convert import convert
from ..state.model import DesiredState
from .beyond import beyond
from .compare import Comparison, compare

__all__ = ["Observed", "desired_config", "observe", "read_running", "read_state"]


def read_state(
    catalog: Catalog, services: tuple[str, ...], tag: str | None, discover: bool = False
) -> tuple[DesiredState, tuple[str, ...]]:
    """Every service read once (no blocking), converted as the watches do; with ``discover``,
    the services with a route tag too (the catalog list read once)."""
    found, notes, discovered = [], [], frozenset[str]()
    if discover:
        explicit = services
        services, discovery = read_followed(catalog, explicit, tag)
        discovered = frozenset(services) - set(explicit)
        notes += [f"discover: service skipped: {reason}" for _, reason in sorted(discovery.refused.items())]
    for name in services:
        _, entries = catalog.health_service(name, tag=tag, index=0, wait=0, passing=False)
        conversion = convert(name, list(entries), passing_only=True)
        found.append(conversion.service)
        notes += conversion.skipped
    return DesiredState(tuple(found), discovered), tuple(notes)


def desired_config(
    state: DesiredState, renderer: Renderer, values: Mapping[str, str], env: Mapping[str, str] | None = None
) -> str:
    """The config the watcher would write for ``state`` (TemplateError when the template fails)."""
    return renderer.render(state, values, dict(os.environ if env is None else env))


def read_running(
    runtime: RuntimeAPI | None, backends: Sequence[str]
) -> tuple[dict[str, dict[str, ServerState]] | None, dict[str, str]]:
    """Every option HAProxy reports of each backend's servers; errors by backend."""
    if runtime is None:
        return None, {}
    running, errors = {}, {}
    for backend in backends:
        try:
            running[backend] = runtime.servers(backend, full=True)
        except LiveUpdateFailed as exc:
            errors[backend] = str(exc)
    return running, errors


@dataclass(frozen=True)
class Observed:
    """The three places read once, and their comparison."""

    comparison: Comparison
    state: DesiredState  # what Consul says, converted as the watches do
    file_text: str | None  # the config file (None: it does not exist, or none was named)
    desired_text: str | None  # the config the watcher would write (None: the template failed)
    #: (backend, server) -> drain or maint: the runtime state operator overrides ask for.
    admin: Mapping[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Beyond:
    """What :func:`~discovery.observe.beyond.beyond` reads of the watcher's settings."""

    services: tuple[str, ...]
    failover_dcs: tuple[str, ...]
    overrides_prefix: str


def observe(
    catalog: Catalog,
    *,
    services: tuple[str, ...],
    output: Path | None,
    template: Path,
    values: Mapping[str, str],
    tag: str | None = None,
    discover: bool = False,
    runtime: RuntimeAPI | None = None,
    env: Mapping[str, str] | None = None,
    backends: Sequence[str] | None = None,
    failover_dcs: tuple[str, ...] = (),
    overrides_prefix: str = "",
    settling: bool = False,
) -> Observed:
    """Read Consul, the file and HAProxy, once each, and compare them.  ``backends``: the ones to
    compare (default: every service read, then every other backend of the file).  Failover
    datacenters and operator overrides are read and applied as the watcher does
    (:func:`~discovery.observe.beyond.beyond`)."""
    state, read_notes = read_state(catalog, services, tag, discover)
    text = LiveConfig(output).read() if output is not None else None
    file = parse(text) if text is not None else None
    in_file = {b: {n: line.addr_port for n, line in file.servers_of(b).items()} for b in file.backends} if file else {}
    more: list[str] = []
    state, admin, kept = beyond(catalog, _Beyond(services, failover_dcs, overrides_prefix), state, more, in_file)
    notes = read_notes + tuple(more)
    candidate, broken = None, None
    try:
        candidate = desired_config(state, Renderer(template), values, env)
    except TemplateError as exc:
        broken = str(exc)
    desired = parse(candidate) if candidate is not None else None
    if backends is None:
        names = [s.name for s in state.services]
        backends = [*names, *(b for b in (file.backends if file else ()) if b not in names)]
    running, errors = read_running(runtime, backends)
    comparison = compare(
        desired,
        file if output is not None else None,
        running,
        backends,
        haproxy_errors=errors,
        admin=admin,
        settling=settling,
        kept={(b, n) for b, names in kept.items() for n in names},
        summary=state.summary(),
        notes=notes,
        broken=broken,
    )
    return Observed(comparison, state, text, candidate, admin)
