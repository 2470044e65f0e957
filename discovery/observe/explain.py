"""``disco explain SERVICE[/INSTANCE]``: every instance Consul knows, routed or not, and why.

Read-only.  Consul is asked for every instance of the service, whatever its checks say;
each one is judged with the functions the watches use (:func:`~discovery.state.convert.status`,
:func:`~discovery.state.convert.refusal`, ...), so the reasons are the watcher's own, in
this order: a check not passing (which, and its output), maintenance mode, filtered out
by ``--tag``, refused by the catalog checks (which field and why), held by the sanity
gate (asked of the running watcher's ``/readyz``), draining in HAProxy, and what operator overrides
(Consul KV) do to it, with their key.  Whether it is
routed comes from the config file and, with a runtime socket, from HAProxy itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..consul.client import Catalog
from ..errors import ConfigError, LiveUpdateFailed
from ..haproxy.plan import ParsedConfig
from ..haproxy.runtime import RuntimeAPI, ServerState
from ..state.convert import convert, failing_checks, in_maintenance, refusal, status
from .overrides import Seen

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


def explain(
    catalog: Catalog,
    service: str,
    instance: str | None = None,
    *,
    tag: str | None = None,
    config: ParsedConfig | None = None,
    runtime: RuntimeAPI | None = None,
    held: Mapping[str, str] | None = None,
    overrides: Seen | None = None,
) -> list[Explained]:
    """Every instance of ``service`` (or just ``instance``, by service ID or server name)."""
    held = held or {}
    _, entries = catalog.health_service(service, tag=None, index=0, wait=0, passing=False)
    entries = [e for e in entries if isinstance(e, Mapping)]
    names = {(i.id, i.node): i.name for i in convert(service, entries).service.instances}
    in_config = {name for (backend, name) in (config.servers if config else {}) if backend == service}
    running: dict[str, ServerState] = {}
    if runtime is not None:
        try:
            running = runtime.servers(service)
        except LiveUpdateFailed:
            running = {}
    result = []
    for entry in entries:
        svc, node = entry.get("Service") or {}, entry.get("Node") or {}
        sid, node_name = str(svc.get("ID")), str(node.get("Node"))
        server = names.get((sid, node_name), sid)
        address = f"{svc.get('Address') or node.get('Address')}:{svc.get('Port')}"
        state = running.get(server)
        routed = server in in_config and (
            runtime is None or (state is not None and not state.in_maintenance and not state.draining)
        )
        reasons = reasons_for(entry, service, tag, held, state)
        if overrides is not None:  # an operator override names it (drain, disable, weight) or its routes
            reasons += overrides.reasons(service, sid, server)
        result.append(Explained(service, server, node_name, address, status(entry), routed, tuple(reasons)))
    known = {e.server for e in result}
    for name in sorted((in_config | set(running)) - known):  # still in HAProxy, gone from Consul
        state = running.get(name)
        reasons = ["Consul no longer lists it"]
        if service in held:
            reasons.append(
                f"the sanity gate holds the newest change of {service} ({held[service]}): "
                "HAProxy keeps the servers it had"
            )
        if state is not None and state.draining:
            reasons.append("draining in HAProxy: no new requests, deleted once its connections are done")
        address = f"{state.address}:{state.port}" if state else "?"
        result.append(
            Explained(
                service,
                name,
                "?",
                address,
                "absent",
                name in in_config and not (state is not None and (state.draining or state.in_maintenance)),
                tuple(reasons),
            )
        )
    if instance is not None:
        result = [e for e in result if instance in (e.server, e.server.split(":")[-1])]
        if not result:
            raise ConfigError(f"Consul, the config and HAProxy know no instance {instance!r} of {service}")
    return sorted(result, key=lambda e: e.server)


def as_dicts(explained: list[Explained]) -> list[dict[str, Any]]:
    return [asdict(e) for e in explained]
