"""A typed adapter over python-consul2: the only module that talks to Consul's HTTP API.

It fixes python-consul2's pitfalls in one place: an explicit read timeout longer
than the blocking wait (the library waits forever by default, so a half-open
connection would hang the watcher), explicit address and token (the library
lets ``CONSUL_HTTP_ADDR`` override what it was given), and the library's
exceptions mapped onto disco's own (403 is not "Consul is down").

Reads (the blocking queries of both watch modes and the catalog fan-out) go
through :meth:`ConsulClient._read`, which asks for ``?stale`` when the client is
made with ``stale=True``: any server then answers from its own copy, and reads
go on while the servers elect a leader.  Consul says how old such an answer may
be (``X-Consul-LastContact``, ms since the answering server heard from the
leader); an answer older than ``max_stale`` is asked again once with the default
consistency, as consul-template does (:func:`too_stale`).  The leader query
(:meth:`ConsulClient.leader`, the sanity gate's probe) never uses ``?stale``.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import consul.base
import consul.std
import requests

import consul

from ..errors import AccessDenied, CatalogUnavailable
from ..settings import ConsulSettings, format_duration
from .aio_client import AsyncConsul
from .fit import AgentLimits, agent_limits
from .http import PerThreadHTTPClient
from .stale import DEFAULT_MAX_STALE as DEFAULT_MAX_STALE
from .stale import too_stale as too_stale

T = TypeVar("T")
Entries = Sequence[Mapping[str, Any]]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """One read: the body, ``X-Consul-Index``, and how fresh the answering server was."""

    index: int
    body: Any
    last_contact_ms: int | None = None
    known_leader: bool | None = None


class Catalog(Protocol):
    """What the watcher needs from Consul; tests of pure logic pass a fake."""

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


class ConsulClient:
    """python-consul2 with explicit settings, timeouts and error mapping."""

    def __init__(
        self,
        settings: ConsulSettings,
        request_timeout: float = 10.0,
        stale: bool = False,
        max_stale: float = DEFAULT_MAX_STALE,
        http: PerThreadHTTPClient | None = None,
    ) -> None:
        """``stale``: every read asks for ``?stale`` (see the module's docstring); ``http``: the
        transport, for tests (python-consul2's HTTP client interface)."""
        self.settings = settings
        self.request_timeout = request_timeout
        self.stale = stale
        self.max_stale = max_stale
        verify: bool | str = str(settings.ca_file) if settings.ca_file and settings.verify else settings.verify
        self._consul = consul.Consul(host=settings.host, port=settings.port, scheme=settings.scheme, verify=verify)
        # Undo python-consul2's environment override (our settings already resolved it), and give
        # every thread its own timeout and session.
        self._http = http or PerThreadHTTPClient(
            settings.host, settings.port, settings.scheme, verify, timeout=request_timeout
        )
        self._consul.http = self._http
        self._consul.scheme = settings.scheme
        self._requests_lock = threading.Lock()
        self._made = 0
        self._reasked = 0

    @property
    def requests(self) -> int:
        """HTTP requests made so far, from every thread (for the watcher's stats line)."""
        return self._made

    def interrupt(self) -> None:
        """Shut down every connection to Consul: reads in flight (long polls) fail at once with
        CatalogUnavailable.  For stopping; a later request opens a new connection."""
        self._http.interrupt()

    @property
    def stale_reasks(self) -> int:
        """``?stale`` answers older than ``max_stale`` that were asked again with the default consistency."""
        return self._reasked

    def _call(self, fn: Callable[..., T], *args: Any, timeout: float | None = None, **kwargs: Any) -> T:
        with self._requests_lock:
            self._made += 1
        try:
            token = self.settings.current_token()
        except OSError as exc:
            # A token file that vanished or became unreadable at run time: reported once and
            # re-tried like a refused token, since it may be fixed without a restart.
            raise AccessDenied(f"cannot read Consul token file {self.settings.token_file}: {exc.strerror}") from exc
        try:
            with self._http.timeout_for(timeout or self.request_timeout):
                return fn(*args, token=token, **kwargs)
        except consul.base.ACLPermissionDenied as exc:
            raise AccessDenied(
                f"Consul at {self.settings.url} refused the ACL token (403): {str(exc).strip()}"
            ) from exc
        except (requests.RequestException, consul.base.ConsulException) as exc:
            raise CatalogUnavailable(f"Consul at {self.settings.url} is unavailable: {_brief(exc)}") from exc

    # -- watching --------------------------------------------------------------------

    def _timeout(self, index: int, wait: float) -> float:
        # Consul adds up to wait/16 of jitter: the read timeout must exceed it.
        return wait + wait / 16 + 5 if index else self.request_timeout

    def _index(self, raw_index: object) -> int:
        try:
            return int(str(raw_index))
        except (TypeError, ValueError) as exc:
            raise CatalogUnavailable(f"Consul at {self.settings.url} sent no usable X-Consul-Index") from exc

    def _get(
        self, path: str, params: list[tuple[str, str]], index: int, wait: float, stale: bool, text: bool = False
    ) -> Answer:
        """One GET of a read endpoint, blocking when ``index`` is given, with Consul's freshness headers
        (python-consul2's read methods drop the headers, and its health reads cannot ask for ``?stale``)."""
        query = list(params)
        if index:
            query += [("index", str(index)), ("wait", format_duration(wait))]
        if stale:
            query.append(("stale", "1"))

        def get(token: str | None = None) -> Answer:
            headers = {"X-Consul-Token": token} if token else {}
            if text:  # kept as text: not compressed either (on loopback gzip costs more than it saves)
                headers["Accept-Encoding"] = "identity"
            callback = self._text_answer if text else self._answer
            return self._http.get(callback, path, params=query, headers=headers)  # type: ignore[no-any-return]

        return self._call(get, timeout=self._timeout(index, wait))

    def _answer(self, response: consul.base.Response) -> Answer:
        try:
            return self._text_answer(response, decode=True)
        except ValueError as exc:
            raise consul.base.ConsulException(f"{response.code}: not JSON: {response.body[:100]!r}") from exc

    def _text_answer(self, response: consul.base.Response, decode: bool = False) -> Answer:
        consul.base.CB._status(response)  # 403, 5xx and the like raise python-consul2's exceptions
        headers = response.headers
        if response.code == 404:
            return Answer(self._index(headers.get("X-Consul-Index")), None)
        body = json.loads(response.body) if decode else response.body
        contact = headers.get("X-Consul-LastContact")
        leader = headers.get("X-Consul-KnownLeader")
        return Answer(
            self._index(headers.get("X-Consul-Index")),
            body,
            int(contact) if contact is not None and str(contact).isdigit() else None,
            None if leader is None else str(leader).lower() == "true",
        )

    def _read(self, path: str, params: list[tuple[str, str]], index: int, wait: float, text: bool = False) -> Answer:
        """A read, ``?stale`` when so configured; a stale answer older than ``max_stale`` is asked again,
        once, with the default consistency (the leader answers, or the server forwards to it)."""
        answer = self._get(path, params, index, wait, self.stale, text)
        if self.stale and too_stale(answer.last_contact_ms, self.max_stale):
            with self._requests_lock:
                self._reasked += 1
            log.debug(
                "%s: stale answer (last contact with the leader %d ms ago, known leader: %s); asking again "
                "with the default consistency",
                path,
                answer.last_contact_ms,
                answer.known_leader,
            )
            answer = self._get(path, params, index, wait, False, text)
        return answer

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

    def _count(self) -> None:
        with self._requests_lock:
            self._made += 1

    def _count_reask(self) -> None:
        with self._requests_lock:
            self._reasked += 1

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


def _brief(exc: BaseException) -> str:
    """One line about a transport error, without requests' nested reprs."""
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or reset"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
