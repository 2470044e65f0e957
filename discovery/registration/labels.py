"""What a container asks for, read from its labels and environment (pure: no Docker, no Consul).

Two vocabularies:

* disco's labels: ``disco.service=NAME``, ``disco.port=PORT`` (a container port),
  ``disco.check=/path|tcp|none`` (default tcp), ``disco.interval=DURATION`` (default 1s),
  ``disco.tags=a,b`` (:func:`split_tags`), ``disco.meta.KEY=VALUE``, ``disco.weight=N`` (meta ``disco-weight``).
  With ``disco.service`` the container is one service, and the ``SERVICE_*`` keys are ignored.
* gliderlabs/registrator's ``SERVICE_<KEY>`` and ``SERVICE_<port>_<KEY>`` (port-specific wins),
  as labels or environment (labels win): ``NAME``, ``TAGS``, ``IGNORE``, ``CHECK_HTTP``,
  ``CHECK_TCP``, ``CHECK_INTERVAL`` (default 10s); other keys become meta (lower-cased).
  Without a name, every published port is a service named after the image; with several ports,
  ``-PORT`` is appended to the name, the image's or ``SERVICE_NAME``'s, unless the name comes
  from ``SERVICE_<port>_NAME`` (registrator's rule: ``SERVICE_NAME=app`` on ports 80 and 9090
  registers ``app-80`` and ``app-9090``); ``explicit`` keeps only the ports that have a name.

Tags are a comma-separated list in both vocabularies; a comma that is part of a tag follows
the rule of :func:`split_tags` (docs/registrator-tags.md).

Everything here is untrusted (whoever starts a container writes it): each value goes through
:func:`~discovery.registration.register.build_registration`, the checks of ``disco register``'s
flags.  A bad value skips the container (or that port) with one reason naming it; full check URLs
are refused, so a label cannot make the Consul agent fetch an arbitrary URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..settings import parse_duration
from ..state import checks as names
from .register import Registration, build_registration

PREFIX = "disco-reg"
#: Not a refusal: compose starts some containers before it connects their network (a connect event follows).
NO_NETWORK = "has no IP on any network yet: registered once it joins one"
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Container:
    """The parts of ``docker inspect`` that decide a container's registrations."""

    id: str
    name: str
    image: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    exposed: tuple[int, ...] = ()  # TCP container ports
    published: Mapping[int, tuple[tuple[str, int], ...]] = field(default_factory=dict)  # port -> (ip, host port)
    networks: Mapping[str, str] = field(default_factory=dict)  # network name -> IP ('' when none)
    healthcheck: bool = False  # a Docker HEALTHCHECK is set
    health: str = ""  # starting, healthy, unhealthy
    paused: bool = False
    stop_signal: str = ""
    started_at: str = ""  # State.StartedAt: a new value is a new run of the same container

    @property
    def short(self) -> str:
        return self.id[:12]

    @property
    def who(self) -> str:
        """How log lines name the container."""
        return f"container {names.show(self.name, 60)} ({self.short})"


@dataclass(frozen=True)
class Placement:
    """Registrator-wide choices: where instances are reached and which containers count."""

    host: str  # this registrator's name in service IDs
    network: str | None = None  # the container's IP on this network
    host_ip: str | None = None  # or the published port on this host IP
    explicit: bool = False  # only containers that name their service
    label: str | None = None  # only containers with this label (KEY or KEY=VALUE)

    @property
    def id_prefix(self) -> str:
        return f"{PREFIX}:{self.host}:"

    def owns(self, service_id: str) -> bool:
        return service_id.startswith(self.id_prefix)


@dataclass(frozen=True)
class Wanted:
    """One registration a container asks for, and whether Docker's health verdict gates it."""

    registration: Registration
    container: str
    docker_health: bool = False

    @property
    def id(self) -> str:
        return self.registration.id


@dataclass(frozen=True)
class Outcome:
    wanted: tuple[Wanted, ...] = ()
    skipped: tuple[str, ...] = ()  # one log line each, naming the container and the value


#: The last option of a route tag that needs the text after the next comma: fabio's ``redirect=CODE,URL``.
_OPEN_REDIRECT = re.compile(r"redirect=[0-9]+")


def split_tags(text: str) -> list[str]:
    """``disco.tags`` / ``SERVICE_TAGS`` -> tags.  Commas separate tags, with two exceptions:

    * ``\\,`` is a comma inside a tag (any tag);
    * in a route tag (``urlprefix-...``) whose text so far ends with the option ``redirect=CODE``,
      the next comma is part of the option (fabio's ``redirect=CODE,URL``): such a tag is not
      complete without its URL, so the comma cannot end it.

    Spaces around each tag are removed; empty tags are dropped.
    """
    tags: list[str] = []
    for raw in re.split(r"(?<!\\),", text):
        piece = raw.strip().replace("\\,", ",")
        if tags and tags[-1].startswith("urlprefix-") and _OPEN_REDIRECT.fullmatch(tags[-1].rsplit(" ", 1)[-1]):
            tags[-1] += "," + piece
        elif piece:
            tags.append(piece)
    return tags


def host_name(raw: str) -> str:
    """A host name usable between the colons of a service ID."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", raw)[:63] or "host"


def service_id(placement: Placement, container_id: str, port: int) -> str:
    return f"{placement.id_prefix}{container_id[:12]}:{port}"


def container_of(service_id: str) -> str:
    """The short container ID inside one of our service IDs."""
    return service_id.split(":")[-2]


def from_inspect(attrs: Mapping[str, Any]) -> Container:
    """``docker inspect`` output (a dict) to a :class:`Container`."""
    config = attrs.get("Config") or {}
    net = attrs.get("NetworkSettings") or {}
    state = attrs.get("State") or {}
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    published: dict[int, tuple[tuple[str, int], ...]] = {}
    for spec, bindings in (net.get("Ports") or {}).items():
        port, _, proto = spec.partition("/")
        if proto == "tcp" and port.isdigit() and bindings:
            published[int(port)] = tuple(
                (b.get("HostIp") or "", int(b["HostPort"])) for b in bindings if str(b.get("HostPort", "")).isdigit()
            )
    exposed = sorted(
        {
            int(p.partition("/")[0])
            for p in (config.get("ExposedPorts") or {})
            if p.endswith("/tcp") and p.partition("/")[0].isdigit()
        }
        | set(published)
    )
    test = (config.get("Healthcheck") or {}).get("Test") or []
    return Container(
        id=str(attrs.get("Id", "")),
        name=str(attrs.get("Name", "")).lstrip("/"),
        image=str(config.get("Image", "")),
        labels=dict(config.get("Labels") or {}),
        env=env,
        exposed=tuple(exposed),
        published=published,
        networks={name: str((n or {}).get("IPAddress") or "") for name, n in (net.get("Networks") or {}).items()},
        healthcheck=bool(test) and test[0] != "NONE",
        health=str((state.get("Health") or {}).get("Status") or ""),
        paused=bool(state.get("Paused")),
        stop_signal=str(config.get("StopSignal") or ""),
        started_at=str(state.get("StartedAt") or ""),
    )


def selected(container: Container, label: str | None) -> bool:
    if not label:
        return True
    key, sep, value = label.partition("=")
    return key in container.labels and (not sep or container.labels[key] == value)


def plan(container: Container, placement: Placement) -> Outcome:
    """The registrations ``container`` asks for, or the reasons it gets none."""
    if not selected(container, placement.label):
        return Outcome()
    if "disco.service" in container.labels:
        return _disco_labels(container, placement)
    return _registrator_keys(container, placement)


def address(container: Container, port: int, placement: Placement) -> tuple[str, int] | str:
    """Where the instance on container ``port`` is reached, or why it cannot be."""
    if placement.host_ip:
        for ip, host_port in container.published.get(port, ()):
            if ip in ("", "0.0.0.0", "::", placement.host_ip):
                return placement.host_ip, host_port
        return f"port {port}/tcp is not published on {placement.host_ip}"
    if placement.network:
        network_ip = container.networks.get(placement.network)
        return (
            (network_ip, port)
            if network_ip
            else f"not on network {placement.network!r} (on {', '.join(container.networks) or 'none'})"
        )
    reachable = {n: ip for n, ip in container.networks.items() if ip}
    if len(reachable) == 1:
        return next(iter(reachable.values())), port
    if not reachable:
        return NO_NETWORK
    return f"on {len(reachable)} networks ({', '.join(reachable)}): give --network or --host-ip"


def _build(
    container: Container,
    placement: Placement,
    service: str,
    port: int,
    *,
    tags: Sequence[str],
    meta: Mapping[str, str],
    check: str,
    interval: str,
) -> Wanted | str:
    where = address(container, port, placement)
    if isinstance(where, str):
        return f"{container.who}: {where}; not registered"
    ip, reach_port = where
    try:
        kind = check.strip().lower()
        if kind not in ("tcp", "none", "") and not check.startswith("/"):
            raise ConfigError(f"check {names.show(check)}: use /path, tcp or none")
        registration = build_registration(
            service,
            reach_port,
            address=ip,
            id=service_id(placement, container.id, port),
            tags=tags,
            meta=meta,
            check_http=check if check.startswith("/") else None,
            no_check=kind in ("none", ""),
            interval=parse_duration(interval),
        )
    except ConfigError as exc:
        return f"{container.who}: {exc}; not registered"
    return Wanted(registration, container.id, container.healthcheck)


def _port(text: str, container: Container) -> int | str:
    if not re.fullmatch(r"\d{1,5}", text.strip()):
        return f"{container.who}: port {names.show(text)} is not a number; not registered"
    port = int(text)
    reason = names.check_port(port)
    return f"{container.who}: {reason}; not registered" if reason else port


def _disco_labels(container: Container, placement: Placement) -> Outcome:
    labels = container.labels
    if "disco.port" in labels:
        port = _port(labels["disco.port"], container)
    elif len(container.exposed) == 1:
        port = container.exposed[0]
    else:
        port = f"{container.who}: disco.service without disco.port (and not exactly one exposed port); not registered"
    if isinstance(port, str):
        return Outcome(skipped=(port,))
    meta = {k[len("disco.meta.") :]: v for k, v in labels.items() if k.startswith("disco.meta.")}
    if "disco.weight" in labels:
        weight = labels["disco.weight"]
        if not re.fullmatch(r"\d{1,3}", weight) or int(weight) > 256:
            return Outcome(
                skipped=(f"{container.who}: disco.weight {names.show(weight)} is not 0..256; not registered",)
            )
        meta["disco-weight"] = str(int(weight))
    tags = split_tags(labels.get("disco.tags", ""))
    result = _build(
        container,
        placement,
        labels["disco.service"],
        port,
        tags=tags,
        meta=meta,
        check=labels.get("disco.check", "tcp"),
        interval=labels.get("disco.interval", "1s"),
    )
    return Outcome(skipped=(result,)) if isinstance(result, str) else Outcome(wanted=(result,))


_RESERVED = ("NAME", "TAGS", "ID", "IGNORE")


def _registrator_keys(container: Container, placement: Placement) -> Outcome:
    general: dict[str, str] = {}
    specific: dict[int, dict[str, str]] = {}
    for source in (container.env, container.labels):  # labels override the environment
        for key, value in source.items():
            match = re.fullmatch(r"SERVICE_(?:(\d{1,5})_)?([A-Z0-9_]+)", key)
            if match is None:
                continue
            if match.group(1):
                specific.setdefault(int(match.group(1)), {})[match.group(2)] = value
            else:
                general[match.group(2)] = value
    ports = sorted(set(container.published) | set(specific))
    if not ports and "NAME" in general:
        ports = list(container.exposed)
    wanted: list[Wanted] = []
    skipped: list[str] = []
    for port in ports:
        keys = {**general, **specific.get(port, {})}
        if keys.get("IGNORE", "").strip():
            continue
        named = keys.get("NAME", "").strip()
        if placement.explicit and not named:
            continue
        service = named or container.image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
        if len(ports) > 1 and not specific.get(port, {}).get("NAME", "").strip():
            service = f"{service}-{port}"  # registrator's rule: only SERVICE_<port>_NAME is taken as it is
        if not 1 <= port <= 65535:
            skipped.append(f"{container.who}: port {port} is outside 1..65535; not registered")
            continue
        check = keys.get("CHECK_HTTP") or ("tcp" if keys.get("CHECK_TCP", "").lower() in _TRUE else "none")
        meta = {k.lower(): v for k, v in keys.items() if k not in _RESERVED and not k.startswith("CHECK_")}
        tags = split_tags(keys.get("TAGS", ""))
        result = _build(
            container,
            placement,
            service,
            port,
            tags=tags,
            meta=meta,
            check=check,
            interval=keys.get("CHECK_INTERVAL", "10s"),
        )
        (skipped if isinstance(result, str) else wanted).append(result)  # type: ignore[arg-type]
    return Outcome(tuple(wanted), tuple(skipped))
