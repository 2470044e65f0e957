"""Apply a server-only plan through HAProxy's runtime API, drain what leaves, and check the result.

Order matters for traffic: new servers first (capacity before removal), then
address and weight changes, then removals.  A removed server is set to
``drain`` (no new requests, in-flight ones finish) and deleted once its
connections are done or its grace time is up.  Sticky backends (dynamic
cookies) get their cookie key re-sent after a server is added or moved, or the
new server would hand out no cookie.  After every change the touched
backends are read back with ``show servers state`` (and ``show stat`` for
cookies); anything that differs from the new config raises LiveUpdateFailed,
and the caller reloads to repair it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..errors import DiscoveryError, LiveUpdateFailed
from ..haproxy import options
from ..haproxy.plan import Add, Op, ParsedConfig, Remove, ServerLine, Set
from ..haproxy.runtime import RuntimeAPI
from ..observe.compare import compare_backend
from .timeline import no_mark

log = logging.getLogger(__name__)

#: HAProxy's default pool-purge-delay (5 s) plus a margin.
IDLE_PURGE = 6.0


class LiveUpdater:
    """Runs plans on one HAProxy and remembers which servers are draining."""

    def __init__(self, api: RuntimeAPI, drain_grace: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.drain_grace = drain_grace
        self.clock = clock
        self.draining: dict[tuple[str, str], float] = {}  # (backend, server) -> delete by
        #: (backend, server) -> the line a draining slot was made for (what it carries).
        self.held: dict[tuple[str, str], ServerLine] = {}
        #: (backend, server) -> drain or maint: the state operator overrides hold a listed server in
        #: (:mod:`~discovery.pipeline.admin`); every other listed server must be ready.
        self.admin: dict[tuple[str, str], str] = {}

    def forget(self) -> None:
        """After a reload HAProxy runs exactly the file: nothing is draining any more."""
        self.draining.clear()
        self.held.clear()

    def execute(self, ops: tuple[Op, ...], new: ParsedConfig | None, mark: Callable[[str], None] = no_mark) -> int:
        """Run the operations, then read HAProxy back; return how many were applied."""
        ordered = sorted(ops, key=lambda op: 2 if isinstance(op, Remove) else 0 if isinstance(op, Add) else 1)
        for op in ordered:
            if isinstance(op, Add):
                self._add(op.server)
            elif isinstance(op, Set):
                self._set(op.server, op.option)
            else:
                self.api.set_state(op.backend, op.name, "drain")
                self.draining[(op.backend, op.name)] = self.clock() + self.drain_grace
                if op.server is not None:
                    self.held[(op.backend, op.name)] = op.server
        keys = new.cookie_keys if new is not None else {}
        moved = {
            op.server.backend for op in ops if isinstance(op, Add) or (isinstance(op, Set) and op.option == "address")
        }
        for backend in sorted(moved & set(keys)):
            self.api.refresh_dynamic_cookies(backend, keys[backend])
        mark("runtime")
        self.verify(
            new,
            {self._backend(op) for op in ops},
            {(op.server.backend, op.server.name) for op in ops if not isinstance(op, Remove)},
        )
        mark("readback")
        return len(ops)

    @staticmethod
    def _backend(op: Op) -> str:
        return op.backend if isinstance(op, Remove) else op.server.backend

    def _set(self, server: ServerLine, option: str) -> None:
        command, answers = options.command(option, server.backend, server.name, server.slot)
        self.api.run(command, *answers)

    def _add(self, server: ServerLine) -> None:
        key = (server.backend, server.name)
        if key in self.draining:  # it came back before it was deleted: reuse its slot if it can carry it
            held = self.held.get(key)
            differ = options.changed(held.slot, server.slot) if held is not None else options.LIVE
            fixed = options.not_live(differ) if held is not None else ("unknown options",)
            if fixed:  # the planner refuses this (see diff's held); never reuse a slot that differs
                raise LiveUpdateFailed(
                    f"{server.backend}/{server.name}: its draining slot has other {', '.join(fixed)}"
                )
            del self.draining[key]
            self.held.pop(key, None)
            for option in differ:
                self._set(server, option)
            self.api.set_state(server.backend, server.name, "ready")
            return
        # Every option on the line (weight too: a weight set after the add would leave the slot's
        # initial weight at 1, where a reload gives the line's).
        self.api.add_server(server.backend, server.name, server.addr_port, server.options)

    def verify(
        self, parsed: ParsedConfig | None, backends: set[str] | None, touched: set[tuple[str, str]] | None = None
    ) -> None:
        """Read ``backends`` (None: every backend of the config) back from HAProxy; raise
        LiveUpdateFailed on any drift from ``parsed``: a server missing, extra (and not one this
        updater drains), not ready, or with any option HAProxy reports other than its line says
        (the same comparison as ``disco status``: :func:`~discovery.observe.compare.drift`).
        ``touched``: the servers just added or changed, the only ones whose options beyond
        address, weight and state are read (None: every server's)."""
        if parsed is None:
            raise LiveUpdateFailed("cannot read the new config back")
        if backends is None:
            backends = {b for (b, _) in parsed.servers} | set(parsed.backends)
        for backend in sorted(backends):
            only = None if touched is None else [n for (b, n) in touched if b == backend]
            running = self.api.servers(backend, full=True, only=only)
            expected = parsed.servers_of(backend)
            draining = frozenset(n for (b, n) in self.draining if b == backend)
            # Held by an override: ready until the override's state is set (right after), then that.
            admin = {n: state for (b, n), state in self.admin.items() if b == backend}
            compared = compare_backend(backend, None, expected, running, draining=draining, admin=admin, settling=True)
            for server in compared.servers:
                if server.drift is not None:
                    raise LiveUpdateFailed(f"{backend}/{server.name}: {server.drift}")
            if backend in parsed.cookie_keys:
                cookies = self.api.cookies(backend)
                missing = sorted(name for name in expected if not cookies.get(name))
                if missing:
                    raise LiveUpdateFailed(f"sticky backend {backend}: no cookie for {', '.join(missing)}")

    def tick(self) -> bool:
        """Delete drained servers whose connections are done or whose grace time is up; True when
        HAProxy refused to delete one for too long: it stays (in maintenance) until a reload."""
        now = self.clock()
        stranded = False
        for (backend, name), deadline in list(self.draining.items()):
            try:
                if now < deadline and self.api.used_connections(backend, name) > 0:
                    continue
                self.api.delete_server(backend, name)
                log.info("deleted drained server %s/%s", backend, name)
            except DiscoveryError as exc:
                # `del server` refuses while HAProxy keeps idle connections to the server, which it
                # purges after pool-purge-delay (5 s by default): keep trying at least that long.
                if now < deadline + max(self.drain_grace, IDLE_PURGE):
                    continue  # try again on the next tick
                log.warning("could not delete drained server %s/%s: %s; a reload will remove it", backend, name, exc)
                stranded = True
            del self.draining[(backend, name)]
            self.held.pop((backend, name), None)
        return stranded
