"""``disco status``: per backend, the servers as Consul says they should be, as the config file
has them, and as HAProxy runs them (runtime API), with every difference flagged.  Read-only.

The differences come from :mod:`~discovery.observe.compare` (the comparison ``plan``, ``explain``
and the watcher's read-back use), over every option a server line carries.  Two kinds, with
their own exit status:

- drift: HAProxy runs something other than the file says (a server missing, extra, in
  maintenance, draining while the file lists it, at another address, or with another weight,
  backup flag, maxconn or check; or not in the state an operator override asks for).  The
  watcher repairs drift with a reload on its next change;
- pending: the file is not yet what Consul says (a server to add or remove, an option such as
  ``disco-weight`` changed, routes or service settings changed; a change on its way, or held
  back by the sanity gate, which the running watcher reports on ``/readyz``).

A server HAProxy drains after Consul dropped it is neither: it is deleted once done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..consul.client import Catalog
from ..haproxy.plan import ParsedConfig, ServerLine
from ..haproxy.runtime import RuntimeAPI, ServerState
from .compare import BackendCompared, Comparison, compare_backend
from .views import observe

#: Exit status of ``disco status`` (1 and 2 as for every command).
IN_STEP, DRIFT, PENDING = 0, 3, 4
_HEALTH = {0: "DOWN", 1: "starting", 2: "UP", 3: "stopping"}


@dataclass(frozen=True)
class ServerRow:
    name: str
    consul: str | None  # address:port Consul routes, None when it does not
    file: str | None  # address:port (weight) in the config file
    haproxy: str | None  # address:port in HAProxy
    state: str | None = None  # ready, maint, drain
    weight: int | None = None
    health: str | None = None  # UP, DOWN, ...
    drift: str | None = None  # why HAProxy differs from the file
    pending: str | None = None  # why the file differs from Consul
    override: str | None = None  # drain or maint: the state an operator override holds it in


@dataclass(frozen=True)
class BackendStatus:
    backend: str
    servers: tuple[ServerRow, ...]
    held: str | None = None  # the gate's reason, when it holds a change of this service
    haproxy_error: str | None = None


@dataclass(frozen=True)
class Status:
    backends: tuple[BackendStatus, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: The config beyond server lines is not yet what Consul says (routes, settings, template).
    config_pending: str | None = None

    @property
    def drift(self) -> bool:
        return any(row.drift for b in self.backends for row in b.servers)

    @property
    def pending(self) -> bool:
        return bool(self.config_pending) or any(b.held or any(row.pending for row in b.servers) for b in self.backends)

    @property
    def exit_code(self) -> int:
        return DRIFT if self.drift else PENDING if self.pending else IN_STEP

    def as_dict(self) -> dict[str, object]:
        return {
            "backends": [asdict(b) for b in self.backends],
            "drift": self.drift,
            "pending": self.pending,
            "config_pending": self.config_pending,
            "notes": list(self.notes),
            "exit_code": self.exit_code,
        }


def _state(s: ServerState) -> str:
    return "maint" if s.in_maintenance else "drain" if s.draining else "ready"


def _file(line: ServerLine) -> str:
    slot = line.slot
    extra = "".join(
        (
            ", backup" if slot.backup else "",
            f", maxconn {slot.maxconn}" if slot.maxconn else "",
            "" if slot.check else ", no check",
        )
    )
    return f"{line.addr_port} (weight {1 if slot.weight is None else slot.weight}{extra})"


def backend_rows(compared: BackendCompared, held: str | None = None) -> BackendStatus:
    """Pure: one backend's rows from the comparison."""
    rows = []
    for s in compared.servers:
        r = s.running
        rows.append(
            ServerRow(
                s.name,
                s.desired.addr_port if s.desired else None,
                _file(s.file) if s.file else None,
                f"{r.address}:{r.port}" if r else None,
                _state(r) if r else None,
                r.weight if r else None,
                _HEALTH.get(r.op_state, str(r.op_state)) if r else None,
                s.drift,
                s.pending,
                s.override,
            )
        )
    return BackendStatus(compared.backend, tuple(rows), held, compared.haproxy_error)


def backend_status(
    backend: str,
    consul: Mapping[str, str],
    parsed: ParsedConfig | None,
    running: Mapping[str, ServerState] | None,
    held: str | None = None,
    haproxy_error: str | None = None,
    admin: Mapping[str, str] | None = None,
) -> BackendStatus:
    """One backend's rows when Consul's side is known only as addresses (``consul``: server ->
    ``address:port``; the dashboard's adapter, until it asks :func:`~discovery.observe.views.observe`):
    the same comparison, with each server Consul routes desired as the file's line at Consul's address."""
    file = parsed.servers_of(backend) if parsed is not None else {}
    desired = {}
    for name, addr_port in consul.items():
        host, _, port = addr_port.rpartition(":")
        line = file.get(name)
        desired[name] = ServerLine(backend, name, host.strip("[]"), int(port), line.options if line else ())
    compared = compare_backend(backend, desired, file, running, haproxy_error, admin=admin)
    return backend_rows(compared, held)


def from_comparison(comparison: Comparison, held: Mapping[str, str] | None = None) -> Status:
    notes = list(comparison.notes)
    if comparison.broken:
        notes.append(f"the template failed, so what Consul says could not be rendered: {comparison.broken}")
    return Status(
        tuple(backend_rows(b, (held or {}).get(b.backend)) for b in comparison.backends),
        tuple(notes),
        comparison.skeleton,
    )


def status(
    catalog: Catalog,
    services: Sequence[str],
    output: Path,
    *,
    template: Path,
    values: Mapping[str, str],
    tag: str | None = None,
    discover: bool = False,
    runtime: RuntimeAPI | None = None,
    held: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    failover_dcs: tuple[str, ...] = (),
    overrides_prefix: str = "",
) -> Status:
    """Ask Consul (once per service: failover datacenters and overrides too) and HAProxy; compare
    with the config file."""
    observed = observe(
        catalog,
        services=tuple(services),
        output=output,
        template=template,
        values=values,
        tag=tag,
        discover=discover,
        runtime=runtime,
        env=env,
        failover_dcs=failover_dcs,
        overrides_prefix=overrides_prefix,
    )
    return from_comparison(observed.comparison, held)
