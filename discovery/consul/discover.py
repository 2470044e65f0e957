"""``disco watch --discover``: which services to follow, read from ``/v1/catalog/services``.

A service is followed when it carries a route tag (a tag :func:`~discovery.state.routes.is_route_tag`
recognises, ``urlprefix-...``) on any of its instances (the catalog lists the union of its
instances' tags), or when it was named with ``--service`` (followed whether or not it has
one).  The choice is pure (:func:`discovered`); :class:`~discovery.consul.catalog_watch.CatalogWatch`
applies it to every catalog answer and tells the pipeline what changed with two messages:

- :class:`Listed`: the catalog was read and these services are followed now (sent for the
  first answer and whenever the set changes; the pipeline waits for each new one's first read);
- :class:`Gone`: this service left the set (its last instance was deregistered, or it no
  longer carries a route tag): drop its backend.  The sanity gate holds the first kind like
  the loss of a service's last instance (a Consul that answers an empty list while it
  recovers must not drop every backend); taking the route tag off is applied at once.

Service names come from the catalog, so they are untrusted: a name the HAProxy config cannot
carry (:data:`~discovery.state.checks.SERVICE_NAME`) is refused, with its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..state import checks
from ..state.routes import is_route_tag
from .client import Catalog

#: Why a service left the followed set.
DEREGISTERED, NO_ROUTE_TAG = "no longer in the catalog", "no longer carries a route tag"


@dataclass(frozen=True)
class Discovery:
    """The followed services (sorted), and the route-tagged names refused (name -> reason)."""

    followed: tuple[str, ...]
    refused: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Listed:
    """The catalog was read: ``services`` are followed now (explicit ones included)."""

    services: tuple[str, ...]


@dataclass(frozen=True)
class Gone:
    """``service`` is no longer followed (``reason``): its backend is dropped (gated when deregistered)."""

    service: str
    reason: str
    seen_at: float = field(default_factory=time.monotonic)


def discovered(
    service_list: Mapping[str, Sequence[str]],
    explicit: Iterable[str],
    is_route: Callable[[object], bool] = is_route_tag,
    tag: str | None = None,
) -> Discovery:
    """Explicit services, plus every listed service with a route tag whose name is safe.  With
    ``tag`` (``--tag``, which routes only the instances carrying it), a service none of whose
    instances carries it is not followed: it would be a backend with no server."""
    followed, refused = set(explicit), {}
    for name, tags in service_list.items():
        if name in followed or not isinstance(tags, (list, tuple)) or not any(is_route(t) for t in tags):
            continue
        if tag is not None and tag not in tags:
            continue
        reason = checks.check(checks.SERVICE_NAME, name, "service name")
        if reason:
            refused[str(name)] = reason
        else:
            followed.add(name)
    return Discovery(tuple(sorted(followed)), refused)


def gone_reason(name: str, service_list: Mapping[str, Sequence[str]], tag: str | None = None) -> str:
    if name not in service_list:
        return DEREGISTERED
    tags = service_list[name]
    if tag is not None and isinstance(tags, (list, tuple)) and tag not in tags and any(map(is_route_tag, tags)):
        return f"no longer has an instance tagged {tag}"
    return NO_ROUTE_TAG


def read_followed(
    catalog: Catalog, explicit: Sequence[str], tag: str | None = None
) -> tuple[tuple[str, ...], Discovery]:
    """One non-blocking read of the catalog list (``disco plan`` and ``status``): the services to
    follow in the watcher's order (``--service`` names first, then the discovered ones by name)."""
    _, service_list = catalog.catalog_services(index=0, wait=0)
    found = discovered(service_list, explicit, tag=tag)
    return (*explicit, *(name for name in found.followed if name not in explicit)), found
