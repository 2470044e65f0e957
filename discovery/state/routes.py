"""Route tags in fabio's syntax -> checked :class:`Route` values.  Pure.

A route tag is ``urlprefix-`` followed by a route and options separated by
single spaces::

    urlprefix-/api                          path prefix, any host
    urlprefix-shop.example.com/             a host
    urlprefix-shop.example.com/api          a host and a path prefix
    urlprefix-*.example.com/                a wildcard host (one leading ``*.``)
    urlprefix-/api strip=/api               the backend sees /users for /api/users
    urlprefix-/old redirect=301,https://example.com/new$path
    urlprefix-:5432 proto=tcp               HAProxy listens on 5432 in TCP mode

These tags contain a space, which the general tag rule of
:mod:`discovery.state.checks` refuses; instead of loosening that rule, every
part of a route tag is checked here against an exact grammar: host names are
RFC 1123 labels, paths use a small safe character set, redirect codes and URLs
have a strict grammar, ports are 1-65535, and an option we do not implement
(``allow=``, ``prepend=``, ``proto=https`` ...) drops the route rather than
being ignored (ignoring ``allow=`` would open what was meant to be closed).

A path prefix matches at a segment boundary: ``/api`` matches ``/api`` and
``/api/x`` but not ``/apix`` (fabio matches any string prefix).

A redirect is built as fabio builds it (:func:`redirect_target`): ``$path`` is the
request's path followed by its query string, the ``/`` before ``$path`` is dropped
(``https://a.example/$path`` gives ``https://a.example/old``, not ``//old``), an
empty path is ``/``, and a redirect whose target is the request's own scheme,
host and path is skipped so that the next route serves the request (no loop).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .checks import show
from .model import Route

PREFIX = "urlprefix-"
#: Every character a route tag may contain at all, checked before anything else is looked at.
_TAG = re.compile(r"[A-Za-z0-9._~/:*=,$ -]{1,512}")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOST = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
WILDCARD_HOST = re.compile(rf"\*\.(?=.{{1,251}}$){_LABEL}(?:\.{_LABEL})*")
#: ``/`` or ``/seg/seg`` (an optional trailing ``/``); segments of letters, digits and ``._~-``, no dot segments.
_SEGMENT = r"(?!\.\.?(?:/|$))[A-Za-z0-9._~-]{1,64}"
PATH = re.compile(rf"/(?:{_SEGMENT}(?:/{_SEGMENT})*/?)?")
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_URL = re.compile(
    r"(?P<scheme>https?)://(?P<host>[^/:$]+)(?::(?P<port>[0-9]{1,5}))?(?P<path>/[^$]*)?"
    r"(?P<append>\$path)?"
)


@dataclass(frozen=True)
class RedirectTarget:
    """A checked redirect URL taken apart: the Location HAProxy answers, and when it would loop."""

    scheme: str  # http or https
    authority: str  # host[:port] as the URL gives it
    #: The Host header values that name the target: ``host`` and ``host:port`` for the default port.
    hosts: tuple[str, ...]
    #: Without ``$path``: the target's path (``/`` when empty); with it: what comes before the
    #: request's path (``""`` for nothing).
    path: str
    append: bool  # ``$path``: the request's path and query string follow ``path``

    @property
    def location(self) -> str:
        """The Location as an HAProxy log-format string (the URL grammar allows no ``%``)."""
        return f"{self.scheme}://{self.authority}{self.path}" + ("%[pathq]" if self.append else "")

    @property
    def self_path(self) -> str | None:
        """The request path for which the target is the request itself (with a host in ``hosts``
        and the same scheme): ``""`` for any path, None for none (the target is always longer)."""
        if not self.append:
            return self.path
        return "" if not self.path else None


def redirect_target(url: str) -> RedirectTarget:
    """A URL :func:`check_redirect` accepted -> its parts (ValueError for anything else)."""
    match = _URL.fullmatch(url)
    if match is None:
        raise ValueError(f"not a checked redirect URL: {url!r}")
    scheme, host, port = match["scheme"], match["host"], match["port"]
    default = "443" if scheme == "https" else "80"
    hosts = (host, f"{host}:{default}") if port is None or int(port) == int(default) else (f"{host}:{int(port)}",)
    path, append = match["path"] or "", match["append"] is not None
    if append:
        path = path[:-1] if path.endswith("/") else path  # fabio: "/$path" is "$path"
    else:
        path = path or "/"
    authority = host if port is None else f"{host}:{port}"
    return RedirectTarget(scheme, authority, hosts, path, append)


def is_route_tag(tag: object) -> bool:
    """Does this tag claim to be a route (so the route grammar, not the general tag rule, decides)?"""
    return isinstance(tag, str) and tag.startswith(PREFIX)


def check_host(host: str) -> str | None:
    if HOST.fullmatch(host) or WILDCARD_HOST.fullmatch(host):
        return None
    return f"host {show(host)} is not a host name (RFC 1123 labels, optionally one leading '*.')"


def check_path(path: str, what: str = "path") -> str | None:
    if len(path) <= 200 and PATH.fullmatch(path):
        return None
    return f"{what} {show(path)} is not a path (/ then segments of letters, digits and ._~-)"


def check_redirect(value: str) -> tuple[int, str] | str:
    """``CODE,URL`` -> (code, url), or the reason it is refused."""
    code, _, url = value.partition(",")
    if not code.isdigit() or int(code) not in REDIRECT_CODES:
        return f"redirect code {show(code)} is not one of 301, 302, 303, 307, 308"
    match = _URL.fullmatch(url)
    if match is None or len(url) > 300:
        return f"redirect URL {show(url)} is not http(s)://HOST[:PORT][/PATH][$path]"
    if HOST.fullmatch(match["host"]) is None:
        return f"redirect URL {show(url)} has no valid host"
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        return f"redirect URL {show(url)} has a port outside 1..65535"
    if match["path"] is not None and check_path(match["path"]):
        return f"redirect URL {show(url)} has a path outside the safe grammar"
    return int(code), url


def parse_tag(tag: str) -> Route | str:
    """One route tag -> a Route, or the reason it is refused (one line, the value shortened)."""
    if _TAG.fullmatch(tag) is None:
        return f"route tag {show(tag)} has characters or a length a route cannot carry"
    words = tag[len(PREFIX) :].split(" ")
    target, options = words[0], words[1:]
    opts: dict[str, str] = {}
    for option in options:
        key, eq, value = option.partition("=")
        if not eq or key in opts:
            return f"route tag {show(tag)}: option {show(option)} is malformed or repeated"
        if key not in ("strip", "redirect", "proto"):
            return f"route tag {show(tag)}: option {show(key)} is not supported"
        opts[key] = value
    proto = opts.pop("proto", "http")
    if target.startswith(":"):
        port = target[1:]
        if proto != "tcp" or opts:
            return f"route tag {show(tag)}: a port route needs proto=tcp and no other option"
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            return f"route tag {show(tag)}: port {show(port)} is outside 1..65535"
        return Route(path="", tcp_port=int(port))
    if proto != "http":
        return f"route tag {show(tag)}: proto {show(proto)} needs a :PORT route (only proto=tcp is supported)"
    slash = target.find("/")
    if slash < 0:
        return f"route tag {show(tag)}: the route must contain a path, e.g. {show(target + '/')}"
    host, path = target[:slash].lower(), target[slash:]
    reason = (check_host(host) if host else None) or check_path(path)
    if reason:
        return f"route tag {show(tag)}: {reason}"
    strip, code, url = opts.get("strip", ""), 0, ""
    if "redirect" in opts:
        if strip:
            return f"route tag {show(tag)}: strip= and redirect= do not go together"
        checked = check_redirect(opts["redirect"])
        if isinstance(checked, str):
            return f"route tag {show(tag)}: {checked}"
        code, url = checked
    if strip:
        reason = check_path(strip, "strip")
        if reason is None and (strip == "/" or not _segment_prefix(strip.rstrip("/"), path)):
            reason = f"strip {show(strip)} is not a leading part of the path {show(path)}"
        if reason:
            return f"route tag {show(tag)}: {reason}"
        strip = strip.rstrip("/")
    return Route(host=host, path=path, strip=strip, redirect_code=code, redirect_url=url)


def _segment_prefix(prefix: str, path: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def parse_tags(tags: list[str], label: str, notes: list[str]) -> tuple[Route, ...]:
    """The routes of one instance's route tags; each refused tag adds one line to ``notes``."""
    found: set[Route] = set()
    for tag in tags:
        route = parse_tag(tag)
        if isinstance(route, str):
            notes.append(f"route dropped from {label}: {route}")
        else:
            found.add(route)
    return tuple(sorted(found))
