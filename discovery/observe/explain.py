"""``disco explain SERVICE[/INSTANCE]``: every instance Consul knows, routed or not, and why.

Read-only.  Consul is asked for every instance of the service, whatever its checks say;
each one is judged with the functions the watches use (:func:`~discovery.state.convert.status`,
:func:`~discovery.state.convert.refusal`, ...), so the reasons are the watcher's own, in
this order: a check not passing (which, and its output), maintenance mode, filtered out
by ``--tag``, refused by the catalog checks (which field and why), held by the sanity
gate (asked of the running watcher's ``/readyz``), draining in HAProxy, what operator overrides
(Consul KV) do to it, with their key; then what the comparison behind ``status`` and ``plan``
says of it (a change not yet applied, a drift).  Whether it is routed comes from the config
file and, with a runtime socket, from HAProxy itself.  A service nobody knows (not Consul, the
file or HAProxy) is bad input: exit 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..consul.client import Catalog
from ..errors import ConfigError
from ..haproxy.render import DEFAULT_TEMPLATE
from ..haproxy.runtime import RuntimeAPI, ServerState
from ..state.convert import failing_checks, in_maintenance, refusal, status
from .compare import ServerCompared
from .overrides import Seen
from .views import observe

#: Exit status of ``disco explain``: every instance shown is routed / at least one is not.
ALL_ROUTED, NOT_ROUTED = 0, 3


@dataclass(frozen=True)
class Explained:
    service: str
    server: str  # the HAProxy server name (the service ID, or NODE:ID when IDs clash)
    node: str
    address: str
    status: str  # passing, warning, critical, maintenance; "absent": not in Consul
    routed: bool
    reasons: tuple[str, ...]  # why it is not routed (or, when routed, why it still is)

    def lines(self) -> list[str]:
        head = f"{self.service}/{self.server} (node {self.node}, {self.address}, {self.status}): "
        return [head + ("routed" if self.routed else "not routed")] + [f"  - {r}" for r in self.reasons]


def _first_line(text: object, limit: int = 200) -> str:
    lines = [ln.strip() for ln in str(text or "").splitlines() if ln.strip()]
    return lines[0][:limit] if lines else "no output"


def reasons_for(
    entry: Mapping[str, Any], service: str, tag: str | None, held: Mapping[str, str], haproxy: ServerState | None
) -> list[str]:
    """Every reason, in order, that keeps this entry out of HAProxy (or keeps it there)."""
    reasons = []
    for chk in failing_checks(entry):
        reasons.append(
            f"check {str(chk.get('CheckID', '?'))!r} ({chk.get('Name', '')}) is "
            f"{chk.get('Status', 'critical')}: {_first_line(chk.get('Output'))}"
        )
    maintenance = in_maintenance(entry)
    if maintenance is not None:
        what = "its node" if str(maintenance.get("CheckID", "")).startswith("_node") else "the instance"
        reasons.append(
            f"maintenance mode on {what}: {_first_line(maintenance.get('Notes') or maintenance.get('Output'))}"
        )
    tags = list((entry.get("Service") or {}).get("Tags") or ())
    if tag is not None and tag not in tags:
        reasons.append(f"filtered out by --tag {tag}: its tags are {tags}")
    refused = refusal(entry)
    if refused:
        reasons.append(f"refused by the catalog checks: {refused}")
    if service in held:
        reasons.append(
            f"the sanity gate holds the newest change of {service} ({held[service]}): HAProxy keeps the servers it had"
        )
    if haproxy is not None and haproxy.draining:
        reasons.append("draining in HAProxy: no new requests, deleted once its connections are done")
    return reasons


def _routed(row: ServerCompared | None, asked: bool) -> bool:
    """Routed: the file lists it and, when HAProxy was asked, HAProxy runs it ready."""
    if row is None or row.file is None:
        return False
    state = row.running
    return not asked or (state is not None and not state.in_maintenance and not state.draining)


def _compared(row: ServerCompared | None) -> list[str]:
    """What the comparison says of this server: a change not yet applied, HAProxy otherwise."""
    if row is None:
        return []
    return [f"pending: {row.pending}"] * bool(row.pending) + [f"drift: {row.drift}"] * bool(row.drift)


def explain(
    catalog: Catalog,
    service: str,
    instance: str | None = None,
    *,
    tag: str | None = None,
    output: Path | None = None,
    template: Path = DEFAULT_TEMPLATE,
    values: Mapping[str, str] | None = None,
    runtime: RuntimeAPI | None = None,
    held: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Seen | None = None,
) -> list[Explained]:
    """Every instance of ``service`` (or just ``instance``, by service ID or server name).

    The server names, and whether each is routed, come from the comparison ``status`` and
    ``plan`` use (:func:`~discovery.observe.views.observe`): Consul converted as the watcher
    does (passing instances only, so an ID shared with a failing instance elsewhere keeps its
    plain name), the file and HAProxy.  ConfigError when none of them knows the service."""
    held = held or {}
    _, entries = catalog.health_service(service, tag=None, index=0, wait=0, passing=False)
    entries = [e for e in entries if isinstance(e, Mapping)]
    observed = observe(
        catalog,
        services=(service,),
        output=output,
        template=template,
        values=values or {},
        tag=tag,
        runtime=runtime,
        env=env,
        backends=[service],
        overrides_prefix=overrides.prefix if overrides is not None else "",
    )
    compared = observed.comparison.backend(service)
    rows = {r.name: r for r in compared.servers} if compared is not None else {}
    watched = observed.state.service(service)
    names = {(i.id, i.node): i.name for i in (watched.instances if watched else ())}
    ids = [str((e.get("Service") or {}).get("ID")) for e in entries]
    asked = runtime is not None and (compared is None or compared.haproxy_error is None)
    result = []
    for entry, sid in zip(entries, ids, strict=True):
        svc, node = entry.get("Service") or {}, entry.get("Node") or {}
        node_name = str(node.get("Node"))
        # The watcher's name for the instances it routes; for the others, qualified by the node
        # when another instance has the same ID (as the watcher would name it).
        server = names.get((sid, node_name)) or (f"{node_name}:{sid}" if ids.count(sid) > 1 else sid)
        address = f"{svc.get('Address') or node.get('Address')}:{svc.get('Port')}"
        row = rows.get(server)
        reasons = reasons_for(entry, service, tag, held, row.running if row else None)
        if overrides is not None:  # an operator override names it (drain, disable, weight) or its routes
            reasons += overrides.reasons(service, sid, server)
        if (sid, node_name) in names or not reasons:
            reasons += _compared(row)
        result.append(
            Explained(service, server, node_name, address, status(entry), _routed(row, asked), tuple(reasons))
        )
    known = {e.server for e in result}
    for name in sorted(set(rows) - known):  # in the file or HAProxy, gone from Consul
        row = rows[name]
        state = row.running
        reasons = ["Consul no longer lists it"]
        if service in held:
            reasons.append(
                f"the sanity gate holds the newest change of {service} ({held[service]}): "
                "HAProxy keeps the servers it had"
            )
        if state is not None and state.draining:
            reasons.append("draining in HAProxy: no new requests, deleted once its connections are done")
        reasons += [f"drift: {row.drift}"] * bool(row.drift)
        line = row.file
        address = f"{state.address}:{state.port}" if state else line.addr_port if line else "?"
        result.append(Explained(service, name, "?", address, "absent", _routed(row, asked), tuple(reasons)))
    if not result:
        raise ConfigError(f"Consul, the config and HAProxy know no service {service!r}")
    if instance is not None:
        # A server name first (``web-1`` is the watcher's web-1); else every instance of that ID.
        result = [e for e in result if e.server == instance] or [
            e for e in result if e.server.split(":")[-1] == instance
        ]
        if not result:
            raise ConfigError(f"Consul, the config and HAProxy know no instance {instance!r} of {service}")
    return sorted(result, key=lambda e: e.server)


def as_dicts(explained: list[Explained]) -> list[dict[str, Any]]:
    return [asdict(e) for e in explained]
