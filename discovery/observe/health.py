"""Liveness and readiness of one watcher, kept from its events, and the HTTP server that shows them.

- ``/healthz``: 200 while the pipeline loop turns (its :class:`Heartbeat` is younger than
  ``stale_after``), 503 otherwise.  It checks nothing external: a restart cannot fix Consul.
- ``/readyz``: 503 until the first config has been validated and applied (or found already
  running), and while stopping; 200 after that, also while Consul is unreachable.  The JSON
  body says what an operator wants to know: Consul reachable, last apply, pending, held services.
- ``/metrics``: the watcher's own registry in Prometheus' text format.

:class:`Health` is an event subscriber; :class:`Server` binds at once (a ConfigError naming
the address when it cannot) and accepts on one of the watcher's worker threads (:meth:`Server.serve`,
which returns once the watcher's stop event is set); each request is answered on a bounded worker
thread of its own, so a slow client cannot starve the probes (:mod:`.httpd`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..consul.watch import ConsulRequest
from ..errors import ConfigError
from ..pipeline.events import Applied, ChangeSeen, Event, Failed, Heartbeat, Held, Released, Stopping
from ..pipeline.execute import Outcome
from .auth import CHALLENGE, Credential
from .dashboard import Dashboard, send
from .httpd import BoundedHTTPServer

log = logging.getLogger(__name__)


class Health:
    """What ``/healthz`` and ``/readyz`` answer, from the events (written on the pipeline's thread,
    read by the server's)."""

    def __init__(
        self,
        stale_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.stale_after = stale_after
        self.clock, self.wall = clock, wall
        self._lock = threading.Lock()
        self._beat: float | None = None
        self._applied_at: float | None = None
        self._consul_up: bool | None = None
        self._pending = False
        self._stopping = False
        self._last_error: str | None = None
        self._held: dict[str, str] = {}

    def __call__(self, event: Event) -> None:
        with self._lock:
            match event:
                case Heartbeat():
                    self._beat = self.clock()
                case ConsulRequest(_, result):
                    self._consul_up = result != "error"
                case ChangeSeen():
                    self._pending = True
                case Held(service, _, _, reason):
                    self._held[service] = reason
                case Released(service):
                    self._held.pop(service, None)
                case Failed(stage, error):
                    self._last_error = f"{stage}: {error}"
                case Applied(_, outcome, _, in_sync):
                    if outcome != Outcome.ROLLED_BACK.value and in_sync:
                        self._applied_at, self._pending, self._last_error = self.wall(), False, None
                case Stopping():
                    self._stopping = True

    def live(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            age = None if self._beat is None else self.clock() - self._beat
        ok = age is not None and age <= self.stale_after
        return ok, {"alive": ok, "loop_last_turn_seconds_ago": None if age is None else round(age, 3)}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            ok = self._applied_at is not None and not self._stopping
            body = {
                "ready": ok,
                "stopping": self._stopping,
                "consul_reachable": self._consul_up,
                "last_apply": self._applied_at,
                "pending": self._pending or bool(self._held),
                "held_services": dict(self._held),
                "last_error": self._last_error,
            }
        return ok, body


class Server:
    """``/metrics``, ``/healthz`` and ``/readyz`` on ``address`` (and the dashboard, when given one):
    at most ``workers`` requests at a time, each of which must send its request line and headers
    within ``read_timeout`` seconds, and at most ``streams`` open dashboards besides.  With
    ``auth``, everything but ``/healthz`` and ``/readyz`` asks for it (:mod:`.auth`)."""

    def __init__(
        self,
        address: tuple[str, int],
        health: Health,
        registry: CollectorRegistry,
        *,
        workers: int = 16,
        streams: int = 32,
        read_timeout: float = 5.0,
        dashboard: Dashboard | None = None,
        auth: Credential | None = None,
    ) -> None:
        self.health = health
        self.registry = registry
        self.dashboard = dashboard
        self.auth = auth
        try:
            self.httpd = BoundedHTTPServer(
                address, self._handler(), workers=workers, streams=streams, read_timeout=read_timeout
            )
        except OSError as exc:
            raise ConfigError(
                f"--listen {address[0]}:{address[1]}: cannot listen there: {exc.strerror or exc}"
            ) from exc
        self.address = f"{address[0]}:{self.httpd.server_address[1]}"

    def serve(self, stop: threading.Event) -> None:
        """Answer requests until ``stop`` is set (the watcher's Workers run this); joins its request threads."""
        log.info(
            "serving %s/metrics, /healthz and /readyz on http://%s/%s",
            "the dashboard at /, " if self.dashboard else "",
            self.address,
            " (/ and /metrics ask for --listen-auth-file's credential)" if self.auth else "",
        )
        self.httpd.serve(stop)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = None  # the server sets the socket's timeout, and cuts off a head that takes too long
            server_version = "disco"

            def do_GET(self) -> None:
                server.httpd.head_read(self.connection)
                path = self.path.split("?", 1)[0]
                if path in ("/healthz", "/readyz"):  # open: probes carry no credential
                    ok, body = server.health.live() if path == "/healthz" else server.health.ready()
                    send(self, 200 if ok else 503, "application/json", json.dumps(body).encode() + b"\n")
                elif server.auth is not None and not server.auth.allows(self.headers.get("Authorization")):
                    send(self, 401, "text/plain; charset=utf-8", b"unauthorized\n", **{"WWW-Authenticate": CHALLENGE})
                elif path == "/metrics":
                    send(self, 200, CONTENT_TYPE_LATEST, generate_latest(server.registry))
                elif server.dashboard is not None and server.dashboard.handles(path):
                    server.dashboard.answer(self, path)
                else:
                    send(self, 404, "text/plain; charset=utf-8", b"not found: try /, /metrics, /healthz, /readyz\n")

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s %s", self.address_string(), format % args)

        return Handler


def ask_watcher(listen: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """A running watcher's ``/readyz`` body (for ``status`` and ``explain``), or None when it does not answer."""
    import urllib.error
    import urllib.request

    from ..config import parse_listen

    host, port = parse_listen(listen)
    host = f"[{host}]" if ":" in host else host
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=timeout) as answer:
            return dict(json.loads(answer.read()))
    except urllib.error.HTTPError as exc:  # 503 before the first apply: the body still says what it knows
        try:
            return dict(json.loads(exc.read()))
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
