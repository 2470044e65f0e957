"""The HTTP transport under python-consul2: a session and a read timeout per thread, and every
connection known, so a stopping watcher can end its long polls at once (:meth:`PerThreadHTTPClient.interrupt`)."""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import consul.std
import requests
import requests.adapters
import urllib3
from urllib3.connection import HTTPConnection


class PerThreadHTTPClient(consul.std.HTTPClient):  # type: ignore[misc]  # python-consul2 ships no types
    """python-consul2's HTTP client reads ``self.timeout`` and ``self.session`` on every request,
    and the watcher calls one client from several threads: both are kept per thread, so a
    long poll's read timeout is never another thread's, and no ``requests.Session`` is shared.

    It also knows every connection it opened, so :meth:`interrupt` can end the long polls of
    a watcher that is stopping (a blocking query may otherwise wait minutes for Consul)."""

    def __init__(self, *args: Any, timeout: float, **kwargs: Any) -> None:
        self._local = threading.local()
        self._default_timeout = timeout
        self._connections: weakref.WeakSet[HTTPConnection] = weakref.WeakSet()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def _opened(self, connection: HTTPConnection) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def interrupt(self) -> None:
        """Shut every open connection down: a read blocked on one (a long poll) fails at once.
        For stopping only: requests in flight fail as if Consul had closed the connection."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            sock = connection.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    # The plain socket's shutdown, also under TLS: SSLSocket.shutdown would drop the TLS
                    # state under a reader in another thread (a ValueError there, not a connection error).
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    @property
    def timeout(self) -> float:
        return getattr(self._local, "timeout", self._default_timeout)

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        if value is not None:  # the base class sets None at construction: keep our default
            self._default_timeout = value

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            adapter = _TrackingAdapter(self._opened)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            # The address, TLS settings and token are explicit (ConsulSettings): no proxy or .netrc from
            # the environment, which requests would otherwise look up on every request (a tenth of a
            # change's CPU at 10,000 instances).
            session.trust_env = False
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


class _Tracking:
    """A connection pool that tells ``opened`` about each connection it makes."""

    def __init__(self, *args: Any, opened: Callable[[HTTPConnection], None], **kwargs: Any) -> None:
        self._opened = opened
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> HTTPConnection:
        connection: HTTPConnection = super()._new_conn()  # type: ignore[misc]
        self._opened(connection)
        return connection


class _TrackingHTTPPool(_Tracking, urllib3.HTTPConnectionPool):
    pass


class _TrackingHTTPSPool(_Tracking, urllib3.HTTPSConnectionPool):  # type: ignore[misc]  # _new_conn returns the HTTPS kind
    pass


class _TrackingAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter whose pools report the connections they open."""

    def __init__(self, opened: Callable[[HTTPConnection], None]) -> None:
        self._opened = opened  # before HTTPAdapter.__init__, which makes the pool manager
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        # urllib3 calls the pool class; a partial that fills in ``opened`` is as good as a class.
        self.poolmanager.pool_classes_by_scheme = {
            "http": functools.partial(_TrackingHTTPPool, opened=self._opened),  # type: ignore[dict-item]
            "https": functools.partial(_TrackingHTTPSPool, opened=self._opened),  # type: ignore[dict-item]
        }
