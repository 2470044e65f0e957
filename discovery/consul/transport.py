"""How disco talks to Consul's HTTP API through python-consul2, whatever it asks: the transport under
:class:`~discovery.consul.client.ConsulClient`.

It fixes python-consul2's pitfalls in one place: an explicit read timeout longer
than the blocking wait (the library waits forever by default, so a half-open
connection would hang the watcher), explicit address and token (the library
lets ``CONSUL_HTTP_ADDR`` override what it was given), and the library's
exceptions mapped onto disco's own (403 is not "Consul is down").

Reads go through :meth:`ConsulTransport._read`, which asks for ``?stale`` when made
with ``stale=True``: any server then answers from its own copy, and reads go on
while the servers elect a leader.  Consul says how old such an answer may be
(``X-Consul-LastContact``, ms since the answering server heard from the leader);
an answer older than ``max_stale`` is asked again once with the default
consistency, as consul-template does (:func:`~discovery.consul.stale.too_stale`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import consul.base
import consul.std
import requests

import consul

from ..errors import AccessDenied, CatalogUnavailable
from ..settings import ConsulSettings, format_duration
from .http import PerThreadHTTPClient
from .stale import DEFAULT_MAX_STALE, too_stale

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """One read: the body, ``X-Consul-Index``, and how fresh the answering server was."""

    index: int
    body: Any
    last_contact_ms: int | None = None
    known_leader: bool | None = None


class ConsulTransport:
    """python-consul2 with explicit settings, timeouts, error mapping, counters and the stale-read rule."""

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

    def _count(self) -> None:
        with self._requests_lock:
            self._made += 1

    def _count_reask(self) -> None:
        with self._requests_lock:
            self._reasked += 1


def _brief(exc: BaseException) -> str:
    """One line about a transport error, without requests' nested reprs."""
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or reset"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
