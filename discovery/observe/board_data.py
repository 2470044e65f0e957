"""What the dashboard shows of each service: Consul, the config file and HAProxy side by side.

This is the one place the dashboard's data comes from (:func:`board_data`); it is a thin adapter
over what ``disco status`` and ``disco explain`` use today (:func:`~discovery.observe.status.backend_status`
for drift and pending, :func:`~discovery.observe.explain.reasons_for` for why Consul's instance is
not routed, :func:`~discovery.state.convert.convert` for routes and settings, with the watcher's
rules), so that it can be pointed at one comparison module when there is one.

Everything returned is plain JSON-able data; text from Consul is passed as data and never as
markup (the page puts it into the DOM as text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..consul.client import Catalog
from ..errors import CatalogError, DiscoveryError, LiveUpdateFailed
from ..haproxy.files import LiveConfig
from ..haproxy.plan import ParsedConfig, parse
from ..haproxy.runtime import RuntimeAPI, ServerState
from ..state.convert import convert, status
from ..state.failover import is_failover
from .explain import reasons_for
from .failover import with_failover
from .overrides import Seen, seen
from .status import ServerRow, backend_status

#: ``show stat`` columns the dashboard shows: HAProxy's status, its last check, current sessions.
STAT_COLUMNS = ("status", "check_status", "check_desc", "scur")


@dataclass(frozen=True)
class Sources:
    """Where the views come from, and what the watcher adds to Consul's view (as ``disco status`` does)."""

    catalog: Catalog
    output: Path
    tag: str | None = None
    runtime: RuntimeAPI | None = None
    #: ``--failover-dc`` names: they lend backups to every followed service.
    failover: tuple[str, ...] = ()
    #: ``--overrides-prefix`` ("": overrides are not followed).
    overrides_prefix: str = ""


def board_data(sources: Sources, services: Sequence[str], held: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Ask Consul (once per service, once per failover datacenter, once for the overrides), read the
    config file, ask HAProxy (if a runtime socket is given)."""
    held = held or {}
    notes: list[str] = []
    try:
        text = LiveConfig(sources.output).read()
    except DiscoveryError as exc:
        text, notes = None, [*notes, str(exc)]
    parsed = parse(text) if text is not None else None
    if text is None:
        notes.append(f"{sources.output} does not exist yet")
    if sources.runtime is None:
        notes.append("no --runtime-socket: HAProxy's view (state, weight, checks, sessions) is not asked")
    overrides = seen(sources.catalog, sources.overrides_prefix)
    notes += [line for line in overrides.lines() if "unknown" in line or "malformed" in line]
    consul_error: str | None = None
    result = []
    for name in services:
        entry, consul_error = _service(sources, name, parsed, held.get(name), overrides, consul_error, notes)
        result.append(entry)
    return {
        "services": result,
        "notes": notes,
        "consul_error": consul_error,
        "haproxy": _haproxy(sources.runtime),
        "overrides": overrides.as_dict(),
    }


def _service(
    sources: Sources,
    name: str,
    parsed: ParsedConfig | None,
    held: str | None,
    overrides: Seen,
    consul_error: str | None,
    notes: list[str],
) -> tuple[dict[str, Any], str | None]:
    runtime, tag = sources.runtime, sources.tag
    entries: list[Mapping[str, Any]] | None = None
    if consul_error is None:  # one failure says it for every service: do not wait out each timeout
        try:
            _, raw = sources.catalog.health_service(name, tag=None, index=0, wait=0, passing=False)
            entries = [e for e in raw if isinstance(e, Mapping)]
        except CatalogError as exc:
            consul_error = str(exc)
    running: dict[str, ServerState] | None = None
    stats: dict[str, dict[str, str]] = {}
    haproxy_error = None
    if runtime is not None:
        try:
            running = runtime.servers(name)
            stats = _stats(runtime, name)
        except LiveUpdateFailed as exc:
            haproxy_error = str(exc)
    consul_view: dict[str, dict[str, Any]] = {}
    routed: dict[str, str] = {}
    routes: list[str] = []
    settings: dict[str, Any] = {}
    admin: dict[str, str] = {}
    dcs = sources.failover
    if entries is not None:
        tagged = [e for e in entries if tag is None or tag in ((e.get("Service") or {}).get("Tags") or ())]
        service, kept = convert(name, tagged, passing_only=True).service, dict[str, str]()
        if dcs:  # other datacenters' passing instances are this backend's backups, as the watcher has them
            in_file = {n: s.addr_port for (b, n), s in (parsed.servers if parsed else {}).items() if b == name}
            service, kept = with_failover(sources.catalog, service, dcs, in_file, notes)
        routed = {i.name: _addr(i.address, i.port) for i in service.instances} | kept
        routes = [r.describe() for r in service.routes] or [f"{name} (default: Host {name})"]
        settings = {k: v for k, v in service.settings.as_context().items() if v not in ("", 0, False)}
        if dcs:
            settings["failover datacenters"] = ", ".join(dcs)
        admin = overrides.admin(name, {i.name: i.id for i in service.instances})
        names = {(i.id, i.node): i.name for i in convert(name, entries).service.instances}
        for e in entries:
            svc, node = e.get("Service") or {}, e.get("Node") or {}
            sid = str(svc.get("ID"))
            server = names.get((sid, str(node.get("Node"))), sid)
            reasons = reasons_for(e, name, tag, {}, (running or {}).get(server)) + overrides.reasons(name, sid, server)
            consul_view[server] = {"status": status(e), "routed": server in routed, "why": reasons}
        for server in routed.keys() - consul_view.keys():  # a failover datacenter's
            dc = is_failover(server, dcs)
            why = overrides.reasons(name, server.split(":", 1)[-1], server)
            consul_view[server] = {
                "status": "passing" if server not in kept else "unknown",
                "routed": True,
                "why": why,
                "dc": dc,
            }
    rows = list(backend_status(name, routed, parsed, running, held, haproxy_error, admin).servers)
    # Instances Consul lists but does not route (a failing check, maintenance, refused) have rows too.
    known = {row.name for row in rows}
    rows += [ServerRow(server, None, None, None) for server in consul_view if server not in known]
    servers = []
    for row in sorted(rows, key=lambda r: r.name):
        stat = stats.get(row.name, {})
        servers.append(
            {
                "name": row.name,
                "consul": consul_view.get(row.name)
                or {"status": "unknown" if entries is None else "absent", "routed": False, "why": []},
                "consul_address": row.consul,
                "file": row.file,
                "haproxy": None
                if row.haproxy is None
                else {
                    "address": row.haproxy,
                    "state": row.state,
                    "weight": row.weight,
                    "status": stat.get("status", row.health),
                    "check": " ".join(v for v in (stat.get("check_status"), stat.get("check_desc")) if v) or None,
                    "sessions": int(stat["scur"]) if stat.get("scur", "").isdigit() else None,
                },
                "override": row.override,
                "drift": row.drift,
                "pending": None if entries is None else row.pending,
            }
        )
    own = overrides.overrides.of(name)
    return {
        "name": name,
        "routes": routes,
        "settings": settings,
        "overrides": [own.describe()] if own else [],
        "override_key": own.key if own else None,
        "held": held,
        "consul_error": consul_error,
        "haproxy_error": haproxy_error,
        "haproxy_asked": runtime is not None,
        "servers": servers,
    }, consul_error


def _addr(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _stats(runtime: RuntimeAPI, backend: str) -> dict[str, dict[str, str]]:
    """``show stat`` of a backend's servers: server name -> the columns in :data:`STAT_COLUMNS`."""
    lines = runtime.ask(f"show stat {backend} 4 -1").splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    columns = lines[0][2:].split(",")
    result = {}
    for line in lines[1:]:
        row = line.split(",")
        if len(row) >= len(columns) - 1 and row[0] == backend:
            values = dict(zip(columns, row, strict=False))
            result[row[1]] = {c: values.get(c, "") for c in STAT_COLUMNS}
    return result


def _haproxy(runtime: RuntimeAPI | None) -> dict[str, Any]:
    """HAProxy's version and worker, from ``show info`` (None values when it is not asked or does not answer;
    no uptime: a snapshot that changes every second would be pushed to every page every time)."""
    if runtime is None:
        return {"version": None, "pid": None, "error": None}
    try:
        info = dict(line.split(": ", 1) for line in runtime.ask("show info").splitlines() if ": " in line)
    except LiveUpdateFailed as exc:
        return {"version": None, "pid": None, "error": str(exc)}
    return {"version": info.get("Version"), "pid": info.get("Pid"), "error": None}
