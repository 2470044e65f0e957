"""The Consul requests disco makes, as typed methods: the watches' reads, the catalog fan-out, the
gate's leader probe, the local agent's API for ``disco register`` and the registrator.  How they
travel (timeouts, token, errors, ``?stale`` and the ``max_stale`` rule) is
:class:`~discovery.consul.transport.ConsulTransport`'s; the leader query
(:meth:`ConsulClient.leader`, the sanity gate's probe) never uses ``?stale``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import consul.base

from ..errors import AccessDenied, CatalogUnavailable
from .aio_client import AsyncConsul
from .fit import AgentLimits, agent_limits
from .http import PerThreadHTTPClient as PerThreadHTTPClient
from .stale import DEFAULT_MAX_STALE as DEFAULT_MAX_STALE
from .stale import too_stale as too_stale
from .transport import Answer as Answer
from .transport import ConsulTransport

Entries = Sequence[Mapping[str, Any]]


class Catalog(Protocol):
    """What the watcher needs from Consul; tests of pure logic pass a fake."""

    #: Reads with ``?stale`` (``--stale``): any server answers, a follower up to a heartbeat behind.
    stale: bool

    def health_service(
        self, service: str, *, tag: str | None, index: int, wait: float, passing: bool
    ) -> tuple[int, Entries]:
        """Blocking query: return ``(X-Consul-Index, entries)`` once the index moves past ``index``."""
        ...

    def health_state_text(self, *, index: int, wait: float) -> tuple[int, str]:
        """Blocking query on every check in the datacenter (``/v1/health/state/any``), as Consul's
        JSON text (:mod:`~discovery.consul.check_diff` decodes only what changed)."""
        ...

    def catalog_services(self, *, index: int, wait: float) -> tuple[int, Mapping[str, Sequence[str]]]:
        """Blocking query on the service names and their tags (``/v1/catalog/services``)."""
        ...

    def checks_index(self) -> int:
        """The checks' Raft index now, without their bodies."""
        ...

    def leader(self) -> str:
        """The Raft leader's address, or ``""`` while there is none."""
        ...

    def interrupt(self) -> None:
        """End the reads in flight at once (when stopping: a long poll may otherwise last minutes)."""
        ...

    def agent_limits(self) -> AgentLimits:
        """The agent's connection limit per client and whether it serves ``?cached`` (unknown when unreadable)."""
        ...

    def service_reader(self, connections: int, cached: bool) -> AsyncConsul:
        """A client for the per-service long polls, on the caller's event loop, with the same settings."""
        ...

    @property
    def requests(self) -> int:
        """HTTP requests made so far (the watcher's stats line)."""
        ...

    @property
    def stale_reasks(self) -> int:
        """``?stale`` answers asked again with the default consistency (stats line, metrics)."""
        ...


class ConsulClient(ConsulTransport):
    """Consul's endpoints disco uses, over :class:`~discovery.consul.transport.ConsulTransport`."""

    def health_service(
        self, service: str, *, tag: str | None = None, index: int = 0, wait: float = 300.0, passing: bool = True
    ) -> tuple[int, Entries]:
        params = ([("passing", "1")] if passing else []) + ([("tag", tag)] if tag is not None else [])
        answer = self._read(f"/v1/health/service/{service}", params, index, wait)
        return answer.index, answer.body or []

    def health_state_text(self, *, index: int = 0, wait: float = 300.0) -> tuple[int, str]:
        """``/v1/health/state/any`` undecoded, and not compressed: on loopback, gzip costs Consul and
        us more CPU (3.6 MB at 10,000 instances) than it saves."""
        answer = self._read("/v1/health/state/any", [], index, wait, text=True)
        return answer.index, answer.body or "[]"

    def health_service_dc(self, service: str, dc: str, *, index: int = 0, wait: float = 300.0) -> tuple[int, Entries]:
        """Blocking query on a service's instances in another datacenter (``?dc=``), over the WAN."""
        answer = self._read(f"/v1/health/service/{service}", [("dc", dc)], index, wait)
        return answer.index, answer.body or []

    def datacenters(self) -> list[str]:
        """Every datacenter this Consul knows (``/v1/catalog/datacenters``)."""
        body = self._call(lambda token=None: self._consul.catalog.datacenters())
        return [str(dc) for dc in body or () if isinstance(dc, str)]

    def kv_prefix(self, prefix: str, *, index: int = 0, wait: float = 300.0) -> tuple[int, list[tuple[str, bytes]]]:
        """Blocking query on every key under ``prefix`` (``/v1/kv/PREFIX?recurse``): (key, value) pairs,
        values decoded from base64; none when the prefix holds no key (Consul answers 404)."""
        answer = self._read(f"/v1/kv/{prefix}", [("recurse", "1")], index, wait)
        pairs = []
        for item in answer.body or ():
            if not isinstance(item, Mapping) or not isinstance(item.get("Key"), str):
                continue
            try:
                value = base64.b64decode(item.get("Value") or "", validate=True)
            except (ValueError, TypeError):
                value = b"\xff"  # not base64: left to the document check to refuse (not JSON)
            pairs.append((item["Key"], value))
        return answer.index, pairs

    def checks_index(self) -> int:
        """The index of ``/v1/health/state/warning``: the checks table's, as for ``any``, with only the
        checks in warning as its body (usually none).  Consul finds those through its index on the
        status; a ``filter`` that matches nothing would make it evaluate every check (14 ms at
        10,000 checks, against 3)."""
        return self._read("/v1/health/state/warning", [], 0, 0, text=True).index

    def catalog_services(self, *, index: int = 0, wait: float = 300.0) -> tuple[int, Mapping[str, Sequence[str]]]:
        answer = self._read("/v1/catalog/services", [], index, wait)
        return answer.index, answer.body or {}

    def service_reader(self, connections: int, cached: bool) -> AsyncConsul:
        """The per-service watch's client (:mod:`~discovery.consul.service_loop`): same address, token,
        consistency and counters as this one, at most ``connections`` open at once."""
        return AsyncConsul(
            self.settings,
            connections=connections,
            stale=self.stale,
            max_stale=self.max_stale,
            cached=cached,
            request_timeout=self.request_timeout,
            counted=self._count,
            reasked=self._count_reask,
        )

    def agent_limits(self) -> AgentLimits:
        """``/v1/agent/self``'s connection limit per client and cache setting; unknown (with the reason)
        when the agent cannot be asked or the token lacks ``agent:read``."""

        def get(token: str | None = None) -> Any:
            headers = {"X-Consul-Token": token} if token else {}
            return self._http.get(consul.base.CB.json(), "/v1/agent/self", headers=headers)

        try:
            return agent_limits(self._call(get))
        except AccessDenied:
            return AgentLimits(why="the token may not read /v1/agent/self, which needs agent:read")
        except CatalogUnavailable as exc:
            return AgentLimits(why=str(exc), unreachable=True)

    # -- the local agent (disco register) ----------------------------------------------

    def register_service(self, payload: Mapping[str, Any]) -> None:
        """PUT /v1/agent/service/register with a ready payload.

        python-consul2's ``agent.service.register`` cannot pass check fields such as
        ``SuccessBeforePassing``, so we send the payload through its HTTP client.
        """

        def put(token: str | None = None) -> bool:
            headers = {"X-Consul-Token": token} if token else {}
            return bool(
                self._consul.http.put(
                    consul.base.CB.bool(), "/v1/agent/service/register", headers=headers, data=json.dumps(payload)
                )
            )

        self._call(put)

    def deregister_service(self, service_id: str) -> None:
        self._call(self._consul.agent.service.deregister, service_id)

    def agent_services(self) -> Mapping[str, Any]:
        return self._call(self._consul.agent.services)

    def ttl_pass(self, check_id: str, note: str | None = None) -> None:
        self._call(self._consul.agent.check.ttl_pass, check_id, notes=note)

    def ttl_update(self, check_id: str, status: str, note: str | None = None) -> None:
        """Set a TTL check to passing, warning or critical."""
        agent_check = self._consul.agent.check
        update = {"passing": agent_check.ttl_pass, "warning": agent_check.ttl_warn}.get(status, agent_check.ttl_fail)
        self._call(update, check_id, notes=note)

    def agent_checks(self) -> Mapping[str, Any]:
        return self._call(self._consul.agent.checks)

    def maintenance(self, service_id: str, enable: bool, reason: str | None = None) -> None:
        """Put a service of the local agent in maintenance (a critical check) or take it out."""
        self._call(self._consul.agent.service.maintenance, service_id, "true" if enable else "false", reason=reason)

    def leader(self) -> str:
        """The current leader's address, or ``""`` while there is none."""
        return str(self._call(lambda token=None: self._consul.status.leader()) or "")
