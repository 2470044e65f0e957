"""``disco register``: announce one instance to the local Consul agent and keep it announced.

It stays in the foreground (supervisord runs it beside the agent and the
webapp).  Every second it asks the agent whether the service is still known and
registers it again when the agent lost it (restarted without its data dir);
with a TTL check it sends the heartbeat itself.  SIGTERM or SIGINT deregisters
and returns, so a stopped container leaves the backend at once instead of
waiting for its health check to fail.  Input is checked with the same rules the
watcher applies to catalog data, so what disco registers, disco can route.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import tenacity

from ..consul.client import ConsulClient
from ..errors import AccessDenied, CatalogError, ConfigError, RegistrationError
from ..retrying import sleeper, stopped
from ..settings import format_duration
from ..state import checks as names
from ..state import routes, service_settings

log = logging.getLogger(__name__)

CheckKind = Literal["http", "tcp", "ttl", "none"]


@dataclass(frozen=True)
class Check:
    """The health check Consul runs (or, for TTL, waits to hear) for the instance."""

    kind: CheckKind = "tcp"
    target: str = ""  # URL for http, host:port for tcp, empty otherwise
    interval: float = 1.0  # http/tcp interval; TTL length for ttl
    deregister_after: float = 60.0


@dataclass(frozen=True)
class Registration:
    """One instance, validated, ready to send to the agent."""

    service: str
    id: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()
    check: Check = field(default_factory=Check)

    @property
    def check_id(self) -> str:
        return f"service:{self.id}"

    def payload(self) -> dict[str, Any]:
        """The body of PUT /v1/agent/service/register."""
        body: dict[str, Any] = {
            "Name": self.service,
            "ID": self.id,
            "Address": self.address,
            "Port": self.port,
            "Tags": list(self.tags),
            "Meta": dict(self.meta),
        }
        c = self.check
        if c.kind == "none":
            return body
        check: dict[str, Any] = {
            "CheckID": self.check_id,
            "Name": f"{self.service} {c.kind} check",
            "DeregisterCriticalServiceAfter": format_duration(max(c.deregister_after, 60.0)),
        }
        if c.kind == "ttl":
            check["TTL"] = format_duration(c.interval)
        else:
            check["HTTP" if c.kind == "http" else "TCP"] = c.target
            check["Interval"] = format_duration(c.interval)
            check["Timeout"] = format_duration(max(c.interval, 1.0))
        body["Check"] = check
        return body


def primary_address() -> str:
    """This machine's address as others see it: the first non-loopback address of its host name.

    In a container Docker maps the host name to the container's address.  Found
    without sending a packet; falls back to 127.0.0.1.
    """
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return "127.0.0.1"
    addresses = [str(info[4][0]) for info in infos]
    return next((a for a in addresses if not a.startswith("127.")), "127.0.0.1")


def _fail(reason: str | None) -> None:
    if reason:
        raise ConfigError(reason)


def build_registration(
    service: str,
    port: int,
    *,
    address: str | None = None,
    id: str | None = None,
    tags: Sequence[str] = (),
    meta: Mapping[str, str] | None = None,
    check_http: str | None = None,
    check_tcp: bool = False,
    check_ttl: float | None = None,
    interval: float = 1.0,
    deregister_after: float = 60.0,
    hostname: str | None = None,
    no_check: bool = False,
) -> Registration:
    """Check user input and build the registration; raises ConfigError naming the bad value."""
    _fail(names.check(names.SERVICE_NAME, service, "service name"))
    _fail(names.check_port(port))
    address = address or primary_address()
    _fail(names.check_address(address))
    if id is None:
        host = re.sub(r"[^A-Za-z0-9_.-]", "-", hostname or socket.gethostname())
        id = f"{service}-{host}-{port}"
    _fail(names.check(names.SERVER_NAME, id, "service ID"))
    for tag in tags:
        if routes.is_route_tag(tag):  # route tags have their own grammar, as in the watcher
            route = routes.parse_tag(tag)
            _fail(route if isinstance(route, str) else None)
        else:
            _fail(names.check(names.TAG, tag, "tag"))
    meta = dict(meta or {})
    for key, value in meta.items():
        _fail(names.check(names.META_KEY, key, "meta key") or names.check(names.META_VALUE, value, "meta value"))
    notes: list[str] = []
    service_settings.instance_settings(tuple(meta.items()), service, notes)
    _fail(notes[0].split(": ", 1)[1] if notes else None)
    if sum(x is not None and x is not False for x in (check_http, check_tcp or None, check_ttl, no_check or None)) > 1:
        raise ConfigError("give at most one of --check-http, --check-tcp, --check-ttl")
    if interval < 1.0:
        raise ConfigError(f"check interval {format_duration(interval)} is below Consul's minimum of 1s")
    if check_http is not None:
        url = check_http
        if not re.match(r"https?://", check_http):
            if not check_http.startswith("/"):
                raise ConfigError(f"--check-http {check_http!r}: give a path starting with / or a full URL")
            _fail(names.check(names.CHECK_PATH, check_http, "check path"))
            url = f"http://{names.format_address(address)}:{port}{check_http}"
        else:
            _fail(names.check(names.CHECK_URL, check_http, "check URL"))
        check = Check("http", url, interval, deregister_after)
    elif no_check:
        check = Check("none", "", interval, deregister_after)
    elif check_ttl is not None:
        if check_ttl < 1.0:
            raise ConfigError("--check-ttl must be at least 1s")
        check = Check("ttl", "", check_ttl, deregister_after)
    else:
        check = Check("tcp", f"{names.format_address(address)}:{port}", interval, deregister_after)
    return Registration(service, id, address, port, tuple(tags), tuple(sorted(meta.items())), check)


class _Stopped(Exception):
    """Raised inside the retry loop when ``stop`` is set before an attempt."""


class Registrar:
    """Keeps one registration alive with the local agent until ``stop`` is set."""

    def __init__(
        self,
        client: ConsulClient,
        registration: Registration,
        stop: threading.Event,
        resync: float = 1.0,
        connect_attempts: int = 10,
        grace: float = 0.0,
    ) -> None:
        self.client = client
        self.registration = registration
        self.stop = stop
        self.resync = resync
        self.connect_attempts = connect_attempts
        self.grace = grace

    def register(self) -> bool:
        """First registration: retried while the agent starts; then a clear error.

        Returns False when stopped before it registered: no attempt starts once ``stop`` is set.
        """
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(CatalogError) & tenacity.retry_if_not_exception_type(AccessDenied),
            wait=tenacity.wait_random_exponential(multiplier=0.2, max=3.0),
            stop=tenacity.stop_any(tenacity.stop_after_attempt(self.connect_attempts), stopped(self.stop)),
            sleep=sleeper(self.stop),
            before_sleep=lambda s: log.warning(
                "registering %s: %s; retrying", self.registration.id, s.outcome.exception() if s.outcome else "?"
            ),
            reraise=True,
        )

        def attempt() -> None:
            if self.stop.is_set():
                raise _Stopped
            self.client.register_service(self.registration.payload())

        try:
            retrying(attempt)
        except _Stopped:
            return False  # asked to stop while the agent was still starting: nothing to undo
        except CatalogError as exc:
            if self.stop.is_set():
                return False
            raise RegistrationError(f"could not register {self.registration.id}: {exc}") from exc
        log.info(
            "registered %s (%s at %s:%d, %s check)",
            self.registration.id,
            self.registration.service,
            self.registration.address,
            self.registration.port,
            self.registration.check.kind,
        )
        return True

    def _tick(self) -> None:
        reg = self.registration
        if reg.id not in self.client.agent_services():
            log.warning("the agent no longer knows %s; registering it again", reg.id)
            self.client.register_service(reg.payload())
        if reg.check.kind == "ttl":
            self.client.ttl_pass(reg.check_id, "disco register is alive")

    def run(self) -> None:
        """Register, keep registered until stopped, then deregister."""
        if not self.register():
            return
        period = self.resync
        if self.registration.check.kind == "ttl":
            period = min(period, self.registration.check.interval / 3)
        try:
            while not self.stop.is_set():
                try:
                    self._tick()  # at once too: a TTL check starts critical until its first pass
                except CatalogError as exc:
                    log.warning("keeping %s registered: %s", self.registration.id, exc)
                if self.stop.wait(period):
                    break
        finally:
            self.deregister()

    def deregister(self) -> None:
        try:
            self.client.deregister_service(self.registration.id)
            log.info("deregistered %s", self.registration.id)
        except CatalogError as exc:
            log.error("could not deregister %s: %s", self.registration.id, exc)
            return
        if self.grace > 0:
            # Load balancers need a moment to stop routing here before the app itself stops.
            log.info("waiting %.1fs before exiting", self.grace)
            time.sleep(self.grace)
