"""DesiredState + values -> config text, with Jinja2.  Pure: no I/O beyond loading the template.

The template sees plain data:

- ``services``: a list of ``{name, instances: [{id, name, node, address, port, tags, meta, health}]}``
  in the order the services were given;
- ``service``: the same, keyed by service name; each also has ``routes``, ``settings``
  (``check``, ``balance``, ``sticky``, ``maxconn``, ``https_only``), ``tcp`` and
  ``cookie_key``, and each instance ``weight`` and ``backup``;
- ``routing``: every service's routes in precedence order (:mod:`discovery.state.routing`):
  ``http`` rules, ``tcp`` listeners, ``default_backend``;
- every ``--set K=V`` value at the top level, and all of them as ``values``;
- ``env``: the environment of the watcher.

StrictUndefined makes a misspelt name an error instead of an empty string.  The
``default`` filter still works for optional values, e.g. ``{{ frontend_port | default(80) }}``.

Rendering costs what changed, not what the catalog holds, when the template asks
for it: ``{{ cached(backend, svc) }}`` calls the macro ``backend`` with ``svc``
the first time, and afterwards returns the same text while that service and
everything else the macro may read (the ``--set`` values, ``env``, ``routing``)
are unchanged.  So the macro must depend on nothing else: not on ``services``
or ``service`` (other services).  Other arguments (``cached(rules, true)``) are
compared by value: such a macro is rendered again when ``routing`` changes.
The bundled template renders each backend and the routing rules that way; the
output is byte for byte what a full render gives (tests/unit/test_render_incremental.py
holds one against the other over random changes).  While the services' names and
everything outside them stay, the template itself is not run again either: the text
around the ``cached()`` calls is kept as a frame (:mod:`~discovery.haproxy.frame`) and
only the changed services' fragments are put in it.

The template's own section names (``listen stats``, ``frontend http``, ``tcp-PORT``) are read
from the template itself (:meth:`Renderer.own_sections`, :mod:`discovery.haproxy.sections`);
``render`` leaves out a discovered service whose backend would take one of them, and
:meth:`Renderer.admit` says which and why.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

import jinja2

from ..errors import TemplateError
from ..state import checks as names
from ..state.model import DesiredState, Service
from ..state.routing import Table, parse_ports, table
from . import options
from .frame import Frame, LazyContext, Ref, Slot, record
from .sections import Admission, admit, own_sections, probe_states

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = Path(__file__).parent.parent / "templates" / "haproxy.cfg.j2"
RESERVED = frozenset({"services", "service", "values", "env", "routing"})


def server_address(instance: Mapping[str, Any]) -> str:
    """``address:port`` for a server line, IPv6 in brackets."""
    return f"{names.format_address(instance['address'])}:{instance['port']}"


class Renderer:
    """A loaded template; ``render`` is a pure function of its arguments."""

    def __init__(self, template_path: Path, incremental: bool = True) -> None:
        self.path = template_path
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(template_path.parent)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
        )
        env.filters["server_address"] = server_address
        env.filters["server_options"] = options.render_words
        env.globals["cached"] = self._cached if incremental else _call
        # Frames (:mod:`~discovery.haproxy.frame`): on until a template turns out not to allow them.
        self._splice = incremental
        self._frame: Frame | None = None
        self._services = 0  # how many services the last render had (fewer: forget the others' fragments)
        # (macro, arguments) -> (the arguments, a service for its context, the macro's text), valid while
        # _outside is.
        self._fragments: dict[tuple[Any, ...], tuple[tuple[Any, ...], str]] = {}
        self._outside: tuple[Any, ...] | None = None
        self._routing: _Routing | None = None
        # (--service names, values, env) -> the template's own section names; the last admission.
        self._own: tuple[tuple[Any, ...], dict[str, str]] | None = None
        self._admitted: tuple[tuple[Service, ...], dict[str, str], Admission] | None = None
        try:
            self._template = env.get_template(template_path.name)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"template {template_path} not found") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template {exc.filename or template_path}:{exc.lineno}: {exc.message}") from exc
        except OSError as exc:
            raise TemplateError(f"cannot read template {template_path}: {exc.strerror}") from exc

    def _cached(self, macro: Any, *args: Any) -> str:
        # A service's context is known by its name and checked by its service's identity (a changed
        # service is a new object); any other argument (a flag, a string) by identity too.
        key = (getattr(macro, "name", ""), *(a["name"] if isinstance(a, dict) else a for a in args))
        kept = tuple(a.disco_service if isinstance(a, LazyContext) else a for a in args)
        hit = self._fragments.get(key)
        if hit is not None and len(hit[0]) == len(kept) and all(x is y for x, y in zip(hit[0], kept, strict=True)):
            return hit[1]
        text = str(macro(*args))
        self._fragments[key] = (kept, text)  # the service, not its context: that is built again when needed
        return text

    def routing(self, state: DesiredState, values: Mapping[str, str] | None = None) -> Table:
        """The routing table of ``state`` (:func:`~discovery.state.routing.table`), computed again
        only when a service's name, routes or settings changed, not its instances."""
        return self._routing_of(state, values).table

    def _routing_of(self, state: DesiredState, values: Mapping[str, str] | None) -> _Routing:
        memo, values_key = self._routing, tuple(sorted((values or {}).items()))
        if memo is not None and memo.key[1:] == (state.discovered, values_key) and _same_routes(memo, state.services):
            if memo.services is not state.services:
                memo = dataclasses.replace(memo, services=state.services)
                self._routing = memo
            return memo  # only instances changed (the usual change): no key to build
        key = (tuple((s.name, s.routes, s.settings) for s in state.services), state.discovered, values_key)
        if memo is None or memo.key != key:
            routes = table(state.services, values or {}, state.discovered)
            memo = _Routing(state.services, key, routes, routes.as_context())
        else:
            memo = dataclasses.replace(memo, services=state.services)
        self._routing = memo
        return memo

    def own_sections(
        self, state: DesiredState, values: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The names the template gives its own sections (name -> ``listen stats``), read from two
        probe renders (:mod:`~discovery.haproxy.sections`); computed again only when the ``--service``
        names, the values or the environment change."""
        values, env = dict(values or {}), dict(env or {})
        explicit = tuple(s.name for s in state.services if s.name not in state.discovered)
        key = (explicit, values, env)
        if self._own is not None and self._own[0] == key:
            return self._own[1]
        try:
            ports = parse_ports(str(values.get("tcp_ports", "")))
            texts = [self._full_render(probe, values, env) for probe in probe_states(explicit, ports)]
            own = own_sections(texts, explicit)
        except (jinja2.TemplateError, TemplateError) as exc:
            # The real render will say what is wrong; without the names, HAProxy's check is the guard.
            log.warning("template %s: its own section names could not be read: %s", self.path, exc)
            own = {}
        self._own = (key, own)
        return own

    def admit(
        self, state: DesiredState, values: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None
    ) -> Admission:
        """``state`` without the discovered services whose name the template uses for a section of
        its own, and why each was refused.  The same state gives the same (identical) answer."""
        if not state.discovered:
            return Admission(state)
        own = self.own_sections(state, values, env)
        memo = self._admitted
        if memo is not None and memo[0] is state.services and memo[1] is own:
            return memo[2]
        admission = admit(state, own)
        if admission.refused:  # (a state with nothing to refuse is its own answer: the memo stays)
            self._admitted = (state.services, own, admission)
        return admission

    def _full_render(self, state: DesiredState, values: dict[str, str], env: dict[str, str]) -> str:
        """A render that touches none of the caches (the probes of :meth:`own_sections`)."""
        routing = table(state.services, values, state.discovered)
        services = [s.as_context() for s in state.services]
        context: dict[str, Any] = {
            **values,
            "values": values,
            "env": env,
            "services": services,
            "service": {s["name"]: s for s in services},
            "routing": routing.as_context(),
            "cached": _call,
        }
        return self._template.render(context)

    def render(
        self, state: DesiredState, values: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None
    ) -> str:
        values = dict(values or {})
        clash = RESERVED.intersection(values)
        if clash:
            raise TemplateError(f"--set cannot name {', '.join(sorted(clash))}: reserved template names")
        state = self.admit(state, values, env).state
        if len(state.services) < self._services:  # services gone: forget them
            names = {s.name for s in state.services}
            self._fragments = {k: f for k, f in self._fragments.items() if not set(k[1:]) - names}
        self._services = len(state.services)
        routing = self._routing_of(state, values)
        env = dict(env or {})
        if self._outside is None or self._outside[0] is not routing.table or self._outside[1:] != (values, env):
            self._fragments.clear()  # what a cached macro may read besides its arguments changed
            self._frame = None
            self._outside = (routing.table, values, env)
        try:
            order = tuple(map(attrgetter("name"), state.services))
            if self._splice and self._frame is not None and self._frame.names == order:
                return self._frame.fill(state.services, self._slot_text)
            text = self._whole(state, values, env, routing)
            return self._new_frame(state, values, env, routing, text) if self._splice else text
        except jinja2.TemplateError as exc:
            self._frame = None
            line = _template_line(exc)
            raise TemplateError(f"template {self.path}{line}: {exc}") from exc

    def _whole(self, state: DesiredState, values: dict[str, str], env: dict[str, str], routing: _Routing) -> str:
        """The template rendered (each ``cached()`` macro from the fragments kept, or again)."""
        services: list[dict[str, Any]] = [LazyContext(s) for s in state.services]
        return self._template.render(_context(values, env, services, routing.context))

    def _new_frame(
        self, state: DesiredState, values: dict[str, str], env: dict[str, str], routing: _Routing, text: str
    ) -> str:
        """Make the frame of this state's names (:mod:`~discovery.haproxy.frame`), checked against ``text``, a
        real render of the same state (no frame again when the template does not allow one); return its text."""
        names = tuple(s.name for s in state.services)
        frame = record(
            lambda proxies, cached: self._template.render(
                {**_context(values, env, proxies, routing.context), "cached": cached}
            ),
            names,
        )
        real: list[dict[str, Any]] = [LazyContext(s) for s in state.services]
        if frame is not None and not frame.holds_probes(
            lambda cached: self._template.render({**_context(values, env, real, routing.context), "cached": cached})
        ):
            frame = None
        filled = frame.fill(state.services, self._slot_text) if frame is not None else None
        if filled is not None and filled != text:
            frame = filled = None
        if frame is None:
            log.debug("template %s: rendered whole, not from frames", self.path)
        self._splice = frame is not None
        self._frame = frame
        return filled or text

    def _slot_text(self, slot: Slot, services: tuple[Service, ...]) -> str:
        args = tuple(LazyContext(services[a.index]) if isinstance(a, Ref) else a for a in slot.args)
        return self._cached(slot.macro, *args)


@dataclass(frozen=True)
class _Routing:
    """The last routing table, and what it was computed from."""

    services: tuple[Service, ...]  # the same tuple again needs no key
    key: tuple[Any, ...]  # every service's name, routes and settings; discovered; the values
    table: Table
    context: dict[str, Any]


def _context(
    values: dict[str, str], env: dict[str, str], services: list[dict[str, Any]], routing: dict[str, Any]
) -> dict[str, Any]:
    """What the template sees (a service's context, or a frame's name-only ones, in ``services``)."""
    return {
        **values,
        "values": values,
        "env": env,
        "services": services,
        "service": {s["name"]: s for s in services},
        "routing": routing,
    }


def _same_routes(memo: _Routing, services: tuple[Service, ...]) -> bool:
    """Whether ``services`` have the names, routes and settings the memo's had: a service that is the
    same object is, so one changed service costs one comparison, not every service's."""
    old = memo.services
    if old is services:
        return True
    return len(old) == len(services) and all(
        a is b or (a.name == b.name and a.routes == b.routes and a.settings == b.settings)
        for a, b in zip(old, services, strict=True)
    )


def _call(macro: Any, *args: Any) -> str:
    """``cached`` in a full render: the macro, every time."""
    return str(macro(*args))


def _template_line(exc: BaseException) -> str:
    """Find the template line in a render traceback, for an error a user can act on."""
    tb = exc.__traceback__
    lineno = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(".j2") or "template" in tb.tb_frame.f_code.co_name:
            lineno = tb.tb_lineno
        tb = tb.tb_next
    lineno = getattr(exc, "lineno", None) or lineno
    return f":{lineno}" if lineno else ""
