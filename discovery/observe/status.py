"""``disco status``: per backend, the servers as Consul says they should be, as the config file
has them, and as HAProxy runs them (runtime API), with every difference flagged.  Read-only.

Two kinds of difference, with their own exit status:

- drift: HAProxy runs something other than the file says (a server missing, extra, in
  maintenance, draining while the file lists it, at another address or weight).  The
  watcher repairs drift with a reload on its next change;
- pending: the file is not yet what Consul says (a change on its way, or held back by
  the sanity gate, which the running watcher reports on ``/readyz``).

A server HAProxy drains after Consul dropped it is neither: it is deleted once done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from ..consul.client import Catalog
from ..errors import LiveUpdateFailed
from ..haproxy.plan import ParsedConfig
from ..haproxy.runtime import RuntimeAPI, ServerState
from ..state.convert import convert
from .failover import with_failover
from .overrides import Seen

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

    @property
    def drift(self) -> bool:
        return any(row.drift for b in self.backends for row in b.servers)

    @property
    def pending(self) -> bool:
        return any(b.held or any(row.pending for row in b.servers) for b in self.backends)

    @property
    def exit_code(self) -> int:
        return DRIFT if self.drift else PENDING if self.pending else IN_STEP

    def as_dict(self) -> dict[str, object]:
        return {
            "backends": [asdict(b) for b in self.backends],
            "drift": self.drift,
            "pending": self.pending,
            "notes": list(self.notes),
            "exit_code": self.exit_code,
        }


def _state(s: ServerState) -> str:
    return "maint" if s.in_maintenance else "drain" if s.draining else "ready"


def _drift(file: tuple[str, int] | None, running: ServerState | None, held: str | None = None) -> str | None:
    if running is None:
        return "missing from HAProxy" if file is not None else None
    addr = f"{running.address}:{running.port}"
    if file is None:
        return None if running.draining else "HAProxy runs it, the file does not list it"
    if addr != file[0]:
        return f"HAProxy runs it at {addr}, the file says {file[0]}"
    if running.in_maintenance and held != "maint":
        return "in maintenance in HAProxy"
    if running.draining and held != "drain":
        return "draining in HAProxy while the file lists it"
    if held is not None and _state(running) != held:
        return f"{_state(running)} in HAProxy, an operator override asks for {held}"
    if running.weight != file[1]:
        return f"weight {running.weight} in HAProxy, {file[1]} in the file"
    return None


def backend_status(
    backend: str,
    consul: Mapping[str, str],
    parsed: ParsedConfig | None,
    running: Mapping[str, ServerState] | None,
    held: str | None = None,
    haproxy_error: str | None = None,
    admin: Mapping[str, str] | None = None,
) -> BackendStatus:
    """Pure: one backend's rows from the three views (``running`` None: HAProxy not asked);
    ``admin``: server -> the state (drain, maint) an operator override holds it in."""
    file = {
        name: (s.addr_port, int(s.weight or 1))
        for (b, name), s in (parsed.servers if parsed else {}).items()
        if b == backend
    }
    names = sorted(set(consul) | set(file) | set(running or {}))
    rows = []
    for name in names:
        f, r, c = file.get(name), (running or {}).get(name), consul.get(name)
        pending = None
        if c != (f[0] if f else None):
            pending = (
                "Consul routes it, the file does not list it yet"
                if f is None
                else "Consul no longer routes it"
                if c is None
                else f"Consul says {c}"
            )
        rows.append(
            ServerRow(
                name,
                c,
                f"{f[0]} (weight {f[1]})" if f else None,
                f"{r.address}:{r.port}" if r else None,
                _state(r) if r else None,
                r.weight if r else None,
                _HEALTH.get(r.op_state, str(r.op_state)) if r else None,
                _drift(f, r, (admin or {}).get(name)) if running is not None else None,
                pending,
                (admin or {}).get(name),
            )
        )
    return BackendStatus(backend, tuple(rows), held, haproxy_error)


def status(
    catalog: Catalog,
    services: Sequence[str],
    parsed: ParsedConfig | None,
    *,
    tag: str | None = None,
    runtime: RuntimeAPI | None = None,
    held: Mapping[str, str] | None = None,
    overrides: Seen | None = None,
    failover: Sequence[str] = (),
) -> Status:
    """Ask Consul (once per service) and HAProxy; compare with the parsed config file."""
    backends: list[BackendStatus] = []
    notes: list[str] = []
    for service in services:
        _, entries = catalog.health_service(service, tag=tag, index=0, wait=0, passing=False)
        conversion = convert(service, list(entries), passing_only=True)
        notes += conversion.skipped
        routed, kept = conversion.service, dict[str, str]()
        if failover:  # other datacenters' instances are backups of this backend (or kept, if unreachable)
            in_file = {n: s.addr_port for (b, n), s in (parsed.servers if parsed else {}).items() if b == service}
            routed, kept = with_failover(catalog, routed, failover, in_file, notes)
        consul = {
            i.name: f"{i.address}:{i.port}" if ":" not in i.address else f"[{i.address}]:{i.port}"
            for i in routed.instances
        } | kept
        running, error = None, None
        if runtime is not None:
            try:
                running = runtime.servers(service)
            except LiveUpdateFailed as exc:
                error = str(exc)
        admin = overrides.admin(service, {i.name: i.id for i in routed.instances}) if overrides else None
        backends.append(backend_status(service, consul, parsed, running, (held or {}).get(service), error, admin))
    return Status(tuple(backends), tuple(notes))
