"""One comparison of the three places a server lives: what Consul says (by the watcher's own rules),
the config file, and what HAProxy runs.  ``disco status``, ``plan`` and ``explain`` present its
result, and the watcher's read-back after a live change (:meth:`~discovery.pipeline.live.LiveUpdater.verify`)
is its file-against-HAProxy half, so none of them can say otherwise than the others.

- *desired*: Consul read once and converted as the watches do (passing instances, names made
  unique, settings, routes), rendered with the watcher's template and values: the config
  ``disco watch`` would write now (:func:`desired_config`);
- *pending* (desired against the file): a server the file lacks or still lists, any server
  option that differs (:mod:`~discovery.haproxy.options`), or the rest of the config (routes,
  service settings, the template) differing;
- *drift* (the file against HAProxy): a server missing, extra (unless it drains), not ready, or
  with any option HAProxy reports otherwise than its line.

:func:`compare` is pure (this module does no I/O); :func:`~discovery.observe.views.observe` reads
the three places once and calls it: that is the public entry point (``status``, ``plan``,
``explain``, a dashboard) and returns frozen values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field

from ..haproxy import options
from ..haproxy.plan import ParsedConfig, ServerLine
from ..haproxy.runtime import ServerState

__all__ = [
    "BackendCompared",
    "Comparison",
    "ServerCompared",
    "compare",
    "compare_backend",
    "drift",
    "pending",
]

SKELETON = "the config beyond server lines differs from what Consul says (routes, service settings or the template)"


@dataclass(frozen=True)
class ServerCompared:
    """One server name of one backend in the three places (None: not there, or not asked)."""

    backend: str
    name: str
    desired: ServerLine | None  # the line the watcher would write
    file: ServerLine | None
    running: ServerState | None
    pending: str | None = None  # why the file is not yet what Consul says
    drift: str | None = None  # why HAProxy runs something other than the file says
    override: str | None = None  # drain or maint: the state an operator override holds it in


@dataclass(frozen=True)
class BackendCompared:
    backend: str
    servers: tuple[ServerCompared, ...]
    haproxy_error: str | None = None  # HAProxy could not be asked about this backend

    def server(self, name: str) -> ServerCompared | None:
        return next((s for s in self.servers if s.name == name), None)


@dataclass(frozen=True)
class Comparison:
    backends: tuple[BackendCompared, ...]
    #: The rest of the config (not server lines) differs between desired and file; None: it does not
    #: (or no desired config was rendered).
    skeleton: str | None = None
    #: What Consul says, for people: ``2 backends, 5 servers``; and what the conversion left out.
    summary: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: Why no desired config could be rendered (a template error), if so.
    broken: str | None = None

    @property
    def drift(self) -> str | None:
        """The first drift, as ``backend/server: why``."""
        return next((f"{s.backend}/{s.name}: {s.drift}" for b in self.backends for s in b.servers if s.drift), None)

    @property
    def pending(self) -> str | None:
        found = next(
            (f"{s.backend}/{s.name}: {s.pending}" for b in self.backends for s in b.servers if s.pending), None
        )
        return found or self.skeleton

    def backend(self, name: str) -> BackendCompared | None:
        return next((b for b in self.backends if b.backend == name), None)


def _state(state: ServerState) -> str:
    return "maint" if state.in_maintenance else "drain" if state.draining else "ready"


def drift(
    line: ServerLine | None,
    state: ServerState | None,
    *,
    asked: bool = True,
    drained: bool | None = None,
    override: str | None = None,
    settling: bool = False,
) -> str | None:
    """Why HAProxy's slot differs from the file's line (None: it does not, or HAProxy not ``asked``).

    A slot the file does not list is no drift while it drains: ``drained`` says whether it is one
    the watcher drains (the watcher knows), None takes HAProxy's word for it (``status``).  A
    listed server must be ready, or in the state an operator ``override`` holds it in (drain,
    maint); ``settling`` (the read-back right after a live change, before the override's state is
    set again) lets it still be ready."""
    if not asked:
        return None
    if state is None:
        return "missing from HAProxy" if line is not None else None
    if line is None:
        leaving = state.draining if drained is None else drained
        return None if leaving else "HAProxy runs it, the file does not list it"
    wrong = options.drift(line.slot, state)
    if wrong is not None:
        return f"HAProxy {wrong.replace(', not ', ', the file says ')}"
    if state.in_maintenance and override != "maint":
        return "in maintenance in HAProxy"
    if state.draining and override != "drain":
        return "draining in HAProxy while the file lists it"
    if override is not None and _state(state) != override and not (settling and _state(state) == "ready"):
        return f"{_state(state)} in HAProxy, an operator override asks for {override}"
    return None


def pending(desired: ServerLine | None, line: ServerLine | None) -> str | None:
    """Why the file's line is not yet the one the watcher would write (None: it is)."""
    if desired is None:
        return None if line is None else "Consul no longer routes it"
    if line is None:
        return "Consul routes it, the file does not list it yet"
    differ = options.changed(line.slot, desired.slot)
    if not differ:
        return None
    if differ[0] == "address":
        return f"Consul says {desired.addr_port}"
    what = [f"{name} {_value(name, desired)} (the file: {_value(name, line)})" for name in differ]
    return "Consul says " + ", ".join(what)


def _value(option: str, line: ServerLine) -> str:
    value = options.BY_NAME[option].value(line.slot)
    if isinstance(value, tuple):
        return " ".join(value) or "none"
    return "on" if value is True else "off" if value is False else str(value)


def compare_backend(
    backend: str,
    desired: Mapping[str, ServerLine] | None,
    file: Mapping[str, ServerLine],
    running: Mapping[str, ServerState] | None,
    haproxy_error: str | None = None,
    draining: frozenset[str] | None = None,
    admin: Mapping[str, str] | None = None,
    settling: bool = False,
) -> BackendCompared:
    """One backend in the three places; ``desired`` None: Consul not asked, ``running`` None:
    HAProxy not asked; ``draining``: the slots the watcher drains (None: HAProxy's word);
    ``admin``: server -> the state an operator override holds it in (see :func:`drift`)."""
    names = sorted(set(desired or {}) | set(file) | set(running or {}))
    admin = admin or {}
    rows = []
    for name in names:
        want, line = (desired or {}).get(name), file.get(name)
        state = (running or {}).get(name)
        rows.append(
            ServerCompared(
                backend,
                name,
                want,
                line,
                state,
                pending(want, line) if desired is not None else None,
                drift(
                    line,
                    state,
                    asked=running is not None,
                    drained=None if draining is None else name in draining,
                    override=admin.get(name),
                    settling=settling,
                ),
                admin.get(name),
            )
        )
    return BackendCompared(backend, tuple(rows), haproxy_error)


def compare(
    desired: ParsedConfig | None,
    file: ParsedConfig | None,
    running: Mapping[str, Mapping[str, ServerState]] | None,
    backends: Sequence[str],
    *,
    haproxy_errors: Mapping[str, str] | None = None,
    admin: Mapping[tuple[str, str], str] | None = None,
    settling: bool = False,
    kept: Set[tuple[str, str]] = frozenset(),
    summary: str = "",
    notes: tuple[str, ...] = (),
    broken: str | None = None,
) -> Comparison:
    """Pure: ``backends`` in the three places (``desired`` None: no desired config; ``running``
    None: HAProxy not asked; a backend missing from ``running`` was not asked either; ``admin``:
    (backend, server) -> the state an operator override holds it in; ``kept``: servers the watcher
    keeps as the file has them, a failover datacenter not answering: the file's line is desired)."""
    errors = haproxy_errors or {}
    result = []
    for backend in backends:
        wanted = desired.servers_of(backend) if desired is not None else None
        lines = file.servers_of(backend) if file is not None else {}
        if wanted is not None and any(b == backend for b, _ in kept):
            wanted = {**wanted, **{n: line for n, line in lines.items() if (backend, n) in kept}}
        ran = running.get(backend) if running is not None else None
        held = {n: st for (b, n), st in (admin or {}).items() if b == backend}
        result.append(compare_backend(backend, wanted, lines, ran, errors.get(backend), admin=held, settling=settling))
    skeleton = None
    if desired is not None and file is not None and desired.skeleton != file.skeleton:
        skeleton = f"{SKELETON}; first difference: {_first_difference(file, desired)}"
    elif desired is not None and file is None:
        skeleton = "the config file does not exist yet"
    return Comparison(tuple(result), skeleton, summary, notes, broken)


def _first_difference(file: ParsedConfig, desired: ParsedConfig) -> str:
    """The first line (not a server line) where the file and the desired config differ."""
    have = [line for section in file.skeleton for line in section]
    want = [line for section in desired.skeleton for line in section]
    for a, b in zip(have, want, strict=False):
        if a != b:
            return f"the file has {a!r}, Consul's config {b!r}"
    if len(have) > len(want):
        return f"{have[len(want)]!r} in the file only"
    if len(want) > len(have):
        return f"{want[len(have)]!r} in Consul's config only"
    return "sections in another order"
