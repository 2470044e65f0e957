"""A typed adapter over python-consul2: the only module that talks to Consul's HTTP API.

It fixes python-consul2's pitfalls in one place: an explicit read timeout longer
than the blocking wait (the library waits forever by default, so a half-open
connection would hang the watcher), explicit address and token (the library
lets ``CONSUL_HTTP_ADDR`` override what it was given), and the library's
exceptions mapped onto disco's own (403 is not "Consul is down").
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import consul
import consul.base
import consul.std
import requests

from ..errors import AccessDenied, CatalogUnavailable
from ..settings import ConsulSettings, format_duration

T = TypeVar("T")
Entries = Sequence[Mapping[str, Any]]


class Catalog(Protocol):
    """What the watcher needs from Consul; tests of pure logic pass a fake."""

    def health_service(self, service: str, *, tag: str | None, index: int, wait: float,
                       passing: bool) -> tuple[int, Entries]:
        """Blocking query: return ``(X-Consul-Index, entries)`` once the index moves past ``index``."""
        ...

    def health_state(self, *, index: int, wait: float) -> tuple[int, Entries]:
        """Blocking query on every check in the datacenter (``/v1/health/state/any``)."""
        ...

    def health_state_text(self, *, index: int, wait: float) -> tuple[int, str]:
        """The same, as Consul's JSON text (:mod:`~discovery.consul.check_diff` decodes only what changed)."""
        ...

    def catalog_services(self, *, index: int, wait: float) -> tuple[int, Mapping[str, Sequence[str]]]:
        """Blocking query on the service names and their tags (``/v1/catalog/services``)."""
        ...

    def leader(self) -> str:
        """The Raft leader's address, or ``""`` while there is none."""
        ...


class ConsulClient:
    """python-consul2 with explicit settings, timeouts and error mapping."""

    def __init__(self, settings: ConsulSettings, request_timeout: float = 10.0,
                 stale: bool = False) -> None:
        self.settings = settings
        self.request_timeout = request_timeout
        verify: bool | str = str(settings.ca_file) if settings.ca_file and settings.verify else settings.verify
        self._consul = consul.Consul(host=settings.host, port=settings.port, scheme=settings.scheme,
                                     verify=verify, consistency="stale" if stale else "default")
        # Undo python-consul2's environment override (our settings already resolved it), and give
        # every thread its own timeout and session.
        self._http = PerThreadHTTPClient(settings.host, settings.port, settings.scheme, verify,
                                         timeout=request_timeout)
        self._consul.http = self._http
        self._consul.scheme = settings.scheme
        self._requests_lock = threading.Lock()
        self._made = 0

    @property
    def requests(self) -> int:
        """HTTP requests made so far, from every thread (for the watcher's stats line)."""
        return self._made

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
            raise AccessDenied(f"Consul at {self.settings.url} refused the ACL token (403): {str(exc).strip()}") from exc
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

    def health_service(self, service: str, *, tag: str | None = None, index: int = 0, wait: float = 300.0,
                       passing: bool = True) -> tuple[int, Entries]:
        raw_index, entries = self._call(self._consul.health.service, service, index=index or None,
                                        wait=format_duration(wait), passing=passing, tag=tag,
                                        timeout=self._timeout(index, wait))
        return self._index(raw_index), entries or []

    def health_state(self, *, index: int = 0, wait: float = 300.0) -> tuple[int, Entries]:
        raw_index, checks = self._call(self._consul.health.state, "any", index=index or None,
                                       wait=format_duration(wait), timeout=self._timeout(index, wait))
        return self._index(raw_index), checks or []

    def health_state_text(self, *, index: int = 0, wait: float = 300.0) -> tuple[int, str]:
        """``/v1/health/state/any`` undecoded, and not compressed: on loopback, gzip costs Consul and
        us more CPU (3.6 MB at 10,000 instances) than it saves."""
        def get(token: str | None = None) -> tuple[object, str]:
            params = [("index", index), ("wait", format_duration(wait))] if index else []
            headers = {"Accept-Encoding": "identity", **({"X-Consul-Token": token} if token else {})}
            return self._consul.http.get(_text, path="/v1/health/state/any", params=params, headers=headers)

        raw_index, text = self._call(get, timeout=self._timeout(index, wait))
        return self._index(raw_index), text or "[]"

    def catalog_services(self, *, index: int = 0, wait: float = 300.0) -> tuple[int, Mapping[str, Sequence[str]]]:
        raw_index, services = self._call(self._consul.catalog.services, index=index or None,
                                         wait=format_duration(wait), timeout=self._timeout(index, wait))
        return self._index(raw_index), services or {}

    # -- the local agent (disco register) ----------------------------------------------

    def register_service(self, payload: Mapping[str, Any]) -> None:
        """PUT /v1/agent/service/register with a ready payload.

        python-consul2's ``agent.service.register`` cannot pass check fields such as
        ``SuccessBeforePassing``, so we send the payload through its HTTP client.
        """
        def put(token: str | None = None) -> bool:
            headers = {"X-Consul-Token": token} if token else {}
            return bool(self._consul.http.put(consul.base.CB.bool(), "/v1/agent/service/register",
                                              headers=headers, data=json.dumps(payload)))
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


def _text(response: Any) -> tuple[object, str]:
    """python-consul2's callback for an answer kept as text: its status checked as the library does."""
    consul.base.CB._status(response)  # noqa: SLF001 - the library's own status mapping (403, 5xx, ...)
    return response.headers.get("X-Consul-Index"), response.body


class PerThreadHTTPClient(consul.std.HTTPClient):
    """python-consul2's HTTP client reads ``self.timeout`` and ``self.session`` on every request,
    and the watcher calls one client from several threads: both are kept per thread, so a
    long poll's read timeout is never another thread's, and no ``requests.Session`` is shared."""

    def __init__(self, *args: Any, timeout: float, **kwargs: Any) -> None:
        self._local = threading.local()
        self._default_timeout = timeout
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def timeout(self) -> float:
        return getattr(self._local, "timeout", self._default_timeout)

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        if value is not None:  # the base class sets None at construction: keep our default
            self._default_timeout = value

    @property  # type: ignore[override]
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    @session.setter
    def session(self, _value: requests.Session) -> None:
        pass  # the base class makes one shared session: each thread makes its own instead

    @contextlib.contextmanager
    def timeout_for(self, seconds: float) -> Iterator[None]:
        self._local.timeout = seconds
        try:
            yield
        finally:
            del self._local.timeout


def _brief(exc: BaseException) -> str:
    """One line about a transport error, without requests' nested reprs."""
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or reset"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
