"""Blocking queries on ``/v1/health/service/NAME`` from an asyncio event loop, on aiohttp directly.

Why aiohttp and not python-consul2's ``consul.aio``: that client opens a new ``ClientSession``
and connector for every request (no connection is reused: each long poll would pay a TCP
handshake, and nothing caps the connections), passes arguments current aiohttp refuses
(``loop=``), has no read timeout (a half-open connection would hang the poll; see
:mod:`~discovery.consul.client`), warns from ``__del__``, and drops the response headers the
watch needs (``X-Consul-Index``, ``X-Consul-LastContact``, ``X-Cache``,
``X-Consul-Query-Backend``).  One ``ClientSession`` for the loop's life, with a connector capped
at the long polls the agent allows (:mod:`~discovery.consul.fit`), is the whole client.

Reads follow :class:`~discovery.consul.client.ConsulClient`'s rules: ``?stale`` when asked,
and an answer older than ``max_stale`` asked again once with the default consistency.  With
``cached`` (the agent serves ``?cached``), the agent keeps the query to the servers on its own
connections and refreshes it with stale reads, so the same ``max_stale`` rule applies to cached
answers.  Failures map onto disco's errors: 403 is :class:`~discovery.errors.AccessDenied`, a
connection the agent accepted and closed with no answer is :class:`ConnectionReset` (Consul
1.8.7's answer past its connection limit), the rest :class:`~discovery.errors.CatalogUnavailable`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import yarl

from ..errors import AccessDenied, CatalogUnavailable
from ..settings import ConsulSettings, format_duration
from .fit import agent_limits
from .resets import Outcome, Probe
from .stale import too_stale

#: How long a probe of the agent may take (:meth:`AsyncConsul.probe`).
PROBE_WITHIN = 5.0


class ConnectionReset(CatalogUnavailable):
    """The agent accepted the connection and closed it with no HTTP answer."""


@dataclass(frozen=True)
class Reply:
    """One answer of ``/v1/health/service/NAME`` with the headers the watch reports."""

    index: int
    entries: Sequence[Mapping[str, Any]]
    cache: str = ""  # X-Cache: HIT, MISS, or "" (not asked with ?cached)
    backend: str = ""  # X-Consul-Query-Backend: blocking-query, streaming, or "" (older Consul)
    last_contact_ms: int | None = None


def _nothing() -> None:
    pass


class AsyncConsul:
    """An ``async with`` client: the session lives from ``__aenter__`` to ``__aexit__`` (on one loop)."""

    def __init__(
        self,
        settings: ConsulSettings,
        *,
        connections: int,
        stale: bool = False,
        max_stale: float = 2.0,
        cached: bool = False,
        request_timeout: float = 10.0,
        counted: Callable[[], None] = _nothing,
        reasked: Callable[[], None] = _nothing,
    ) -> None:
        """``connections``: the most connections ever open at once; ``counted``/``reasked``: told of each
        request and each stale answer asked again (the owner's counters)."""
        self.settings = settings
        self.connections = max(1, connections)
        self.stale = stale
        self.max_stale = max_stale
        self.cached = cached
        self.request_timeout = request_timeout
        self._counted = counted
        self._reasked = reasked
        self._session: aiohttp.ClientSession | None = None
        self._base = settings.url.rstrip("/")
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.settings.scheme != "https":
            return False
        if not self.settings.verify:
            return False
        return ssl.create_default_context(cafile=str(self.settings.ca_file) if self.settings.ca_file else None)

    async def __aenter__(self) -> AsyncConsul:
        connector = aiohttp.TCPConnector(
            limit=self.connections, limit_per_host=self.connections, ssl=self._ssl(), enable_cleanup_closed=True
        )
        # No proxy or .netrc from the environment: the address and token are explicit (ConsulSettings).
        self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def health_service(self, service: str, *, tag: str | None, index: int, wait: float) -> Reply:
        """Every instance of ``service`` (whatever its checks say), once the index moves past ``index``."""
        params = [("tag", tag)] if tag is not None else []
        path = f"/v1/health/service/{quote(service, safe='')}"
        reply = await self._get(path, params, index, wait, stale=self.stale, cached=self.cached)
        if (self.stale or self.cached) and too_stale(reply.last_contact_ms, self.max_stale):
            self._reasked()
            reply = await self._get(path, params, index, wait, stale=False, cached=False)
        return reply

    async def _get(
        self, path: str, params: list[tuple[str, str]], index: int, wait: float, *, stale: bool, cached: bool
    ) -> Reply:
        if self._session is None:
            raise RuntimeError("AsyncConsul used outside 'async with'")
        query = list(params)
        if index:
            query += [("index", str(index)), ("wait", format_duration(wait))]
        if stale:
            query.append(("stale", ""))
        if cached:
            query.append(("cached", ""))
        # The URL built once here, already encoded (yarl's parsing and encoding per request cost more).
        url = yarl.URL(f"{self._base}{path}?{urlencode(query)}" if query else f"{self._base}{path}", encoded=True)
        headers = self._headers()
        # Consul adds up to wait/16 of jitter to a blocking query: the read timeout must exceed it.
        read = wait + wait / 16 + 5 if index else self.request_timeout
        timeout = self._timeouts.get(read)
        if timeout is None:
            timeout = self._timeouts[read] = aiohttp.ClientTimeout(
                total=None, connect=self.request_timeout, sock_read=read
            )
        self._counted()
        where = f"Consul at {self.settings.url}"
        try:
            async with self._session.get(url, headers=headers, timeout=timeout) as response:
                body = await response.read()
                status, answer_headers = response.status, response.headers
        except (TimeoutError, aiohttp.ClientError, ConnectionResetError) as exc:
            raise _failure(where, exc) from exc
        return _reply(where, status, answer_headers, body)

    def _headers(self) -> dict[str, str]:
        try:
            token = self.settings.current_token()
        except OSError as exc:
            raise AccessDenied(f"cannot read Consul token file {self.settings.token_file}: {exc.strerror}") from exc
        # Uncompressed: on loopback gzip costs Consul and us more CPU than it saves.
        return {"Accept-Encoding": "identity", **({"X-Consul-Token": token} if token else {})}

    async def probe(self) -> Probe:
        """``/v1/agent/self`` on a fresh connection of its own (never one the long polls hold, nor a wait for
        one): how the agent takes a new connection from this address now, and its connection limit."""
        where = f"Consul at {self.settings.url}"
        try:
            headers = self._headers()
        except AccessDenied as exc:
            return Probe(Outcome.DOWN, detail=str(exc))
        connector = aiohttp.TCPConnector(limit=1, force_close=True, ssl=self._ssl())
        timeout = aiohttp.ClientTimeout(total=min(self.request_timeout, PROBE_WITHIN))
        try:
            async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
                url = yarl.URL(f"{self._base}/v1/agent/self", encoded=True)
                async with session.get(url, headers=headers, timeout=timeout) as response:
                    body = await response.read()
                    status = response.status
        except (TimeoutError, aiohttp.ClientError, ConnectionResetError) as exc:
            failure = _failure(where, exc)
            return Probe(Outcome.RESET if isinstance(failure, ConnectionReset) else Outcome.DOWN, detail=str(failure))
        if status == 429:
            return Probe(Outcome.REFUSED, detail=f"{where} answered 429: {_first_line(body)}")
        limit = None
        if status == 200:
            with contextlib.suppress(ValueError):
                limit = agent_limits(json.loads(body)).max_conns_per_client
        return Probe(Outcome.ANSWERED, limit, f"{where} answered {status}")


def _failure(where: str, exc: BaseException) -> CatalogUnavailable:
    """A request that got no HTTP answer, as disco's error: ConnectionReset when the agent (or what stands in
    front of it) took the connection and closed it."""
    if isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionResetError):
        return ConnectionReset(f"{where} closed the connection with no answer")
    if isinstance(exc, aiohttp.ClientOSError) and (
        isinstance(exc.__cause__, ConnectionResetError) or exc.errno in (errno.ECONNRESET, errno.EPIPE)
    ):
        return ConnectionReset(f"{where} reset the connection with no answer")
    return CatalogUnavailable(f"{where} is unavailable: {_brief(exc)}")


def _first_line(body: bytes) -> str:
    text = body[:200].decode("utf-8", "replace").strip().splitlines()
    return text[0] if text else ""


def _reply(where: str, status: int, headers: Mapping[str, str], body: bytes) -> Reply:
    if status == 403:
        raise AccessDenied(f"{where} refused the ACL token (403): {_first_line(body)}")
    if status == 429:
        raise ConnectionReset(f"{where} refused another connection (429): {_first_line(body)}")
    if status != 200:
        raise CatalogUnavailable(f"{where} is unavailable: {status} {_first_line(body)}")
    try:
        index = int(headers.get("X-Consul-Index", ""))
    except ValueError:
        raise CatalogUnavailable(f"{where} sent no usable X-Consul-Index") from None
    try:
        entries = json.loads(body) if body else []
    except ValueError:
        raise CatalogUnavailable(
            f"{where} answered with something that is not JSON: {_first_line(body)[:100]!r}"
        ) from None
    if not isinstance(entries, list):
        raise CatalogUnavailable(f"{where} answered with something that is not a list of instances")
    if not entries and headers.get("X-Consul-Results-Filtered-By-ACLs", "").lower() == "true":
        raise AccessDenied(f"{where}: the ACL token cannot see this service's instances (answer filtered by ACLs)")
    contact = headers.get("X-Consul-LastContact", "")
    return Reply(
        index,
        entries,
        headers.get("X-Cache", ""),
        headers.get("X-Consul-Query-Backend", ""),
        int(contact) if contact.isdigit() else None,
    )


def _brief(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection refused"
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
