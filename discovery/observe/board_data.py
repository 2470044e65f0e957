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
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..consul.client import Catalog
from ..errors import CatalogError, DiscoveryError, LiveUpdateFailed
from ..haproxy.files import LiveConfig
from ..haproxy.plan import ParsedConfig, parse
from ..haproxy.runtime import RuntimeAPI, ServerState
from ..state.convert import convert, status
from .explain import reasons_for
from .status import ServerRow, backend_status

#: ``show stat`` columns the dashboard shows: HAProxy's status, its last check, current sessions.
STAT_COLUMNS = ("status", "check_status", "check_desc", "scur")


def board_data(
    catalog: Catalog,
    services: Sequence[str],
    output: Path,
    *,
    tag: str | None = None,
    runtime: RuntimeAPI | None = None,
    held: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Ask Consul (once per service), read the config file, ask HAProxy (if a runtime socket is given)."""
    held = held or {}
    notes: list[str] = []
    try:
        text = LiveConfig(output).read()
    except DiscoveryError as exc:
        text, notes = None, [*notes, str(exc)]
    parsed = parse(text) if text is not None else None
    if text is None:
        notes.append(f"{output} does not exist yet")
    if runtime is None:
        notes.append("no --runtime-socket: HAProxy's view (state, weight, checks, sessions) is not asked")
    consul_error: str | None = None
    result = []
    for name in services:
        entry, consul_error = _service(catalog, name, parsed, tag, runtime, held.get(name), consul_error)
        result.append(entry)
    return {"services": result, "notes": notes, "consul_error": consul_error, "haproxy": _haproxy(runtime)}


def _service(
    catalog: Catalog,
    name: str,
    parsed: ParsedConfig | None,
    tag: str | None,
    runtime: RuntimeAPI | None,
    held: str | None,
    consul_error: str | None,
) -> tuple[dict[str, Any], str | None]:
    entries: list[Mapping[str, Any]] | None = None
    if consul_error is None:  # one failure says it for every service: do not wait out each timeout
        try:
            _, raw = catalog.health_service(name, tag=None, index=0, wait=0, passing=False)
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
    if entries is not None:
        tagged = [e for e in entries if tag is None or tag in ((e.get("Service") or {}).get("Tags") or ())]
        service = convert(name, tagged, passing_only=True).service
        routed = {i.name: _addr(i.address, i.port) for i in service.instances}
        routes = [r.describe() for r in service.routes] or [f"{name} (default: Host {name})"]
        settings = {k: v for k, v in asdict(service.settings).items() if v not in ("", 0, False)}
        names = {(i.id, i.node): i.name for i in convert(name, entries).service.instances}
        for e in entries:
            svc, node = e.get("Service") or {}, e.get("Node") or {}
            server = names.get((str(svc.get("ID")), str(node.get("Node"))), str(svc.get("ID")))
            reasons = reasons_for(e, name, tag, {}, (running or {}).get(server))
            consul_view[server] = {"status": status(e), "routed": server in routed, "why": reasons}
    rows = list(backend_status(name, routed, parsed, running, held, haproxy_error).servers)
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
                "drift": row.drift,
                "pending": None if entries is None else row.pending,
            }
        )
    return {
        "name": name,
        "routes": routes,
        "settings": settings,
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
