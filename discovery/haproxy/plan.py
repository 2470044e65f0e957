"""Old config text + new config text -> runtime API operations, or the reason a reload is needed.  Pure.

We diff the *rendered* configs rather than the desired states, so the decision
holds for any template: when everything but the ``server`` lines of existing
backends is identical, the change can go through HAProxy's runtime API and the
file on disk still describes exactly what runs.  Anything else (a new backend,
a changed frontend, a template edit, a server whose options changed) needs the
validated file swap and a reload.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SECTION = re.compile(r"^(global|defaults|frontend|backend|listen|peers|resolvers|userlist|program|"
                      r"http-errors|ring|cache|mailers)\b\s*(\S*)")
_ADDR = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\s]+)):(?P<port>\d+)$")


@dataclass(frozen=True)
class ServerLine:
    """One ``server`` line of a backend."""

    backend: str
    name: str
    address: str
    port: int
    options: tuple[str, ...]

    @property
    def weight(self) -> str | None:
        opts = self.options
        return next((opts[i + 1] for i, o in enumerate(opts[:-1]) if o == "weight"), None)

    def options_without_weight(self) -> tuple[str, ...]:
        out, skip = [], False
        for opt in self.options:
            if skip:
                skip = False
            elif opt == "weight":
                skip = True
            else:
                out.append(opt)
        return tuple(out)

    @property
    def addr_port(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class ParsedConfig:
    skeleton: tuple[str, ...]                      # every line but server lines of backends
    servers: dict[tuple[str, str], ServerLine]     # (backend, name) -> line
    backends: tuple[str, ...] = ()                 # every backend section, servers or not
    #: backend -> its ``dynamic-cookie-key``: sticky backends, whose live-added servers need it re-sent
    cookie_keys: dict[str, str] = field(default_factory=dict)


def parse(text: str) -> ParsedConfig | None:
    """Split a config into its skeleton and its backends' server lines; None if we cannot tell."""
    skeleton: list[str] = []
    servers: dict[tuple[str, str], ServerLine] = {}
    section, name = "", ""
    backends: list[str] = []
    cookie_keys: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        match = _SECTION.match(line)
        if match:
            section, name = match.group(1), match.group(2)
            if section == "backend":
                backends.append(name)
        words = line.split()
        if section == "backend" and len(words) == 2 and words[0] == "dynamic-cookie-key":
            cookie_keys[name] = words[1]
        if section == "backend" and words and words[0] == "server":
            if len(words) < 3:
                return None
            addr = _ADDR.match(words[2])
            if addr is None:
                return None
            server = ServerLine(name, words[1], addr.group("v6") or addr.group("host"), int(addr.group("port")),
                                tuple(words[3:]))
            if (name, server.name) in servers:
                return None
            servers[(name, server.name)] = server
            continue  # order within a backend does not matter to roundrobin: only the set counts
        if line:  # blank and comment-only lines change nothing
            skeleton.append(line)
    return ParsedConfig(tuple(skeleton), servers, tuple(backends), cookie_keys)


@dataclass(frozen=True)
class Add:
    server: ServerLine


@dataclass(frozen=True)
class Remove:
    backend: str
    name: str


@dataclass(frozen=True)
class SetAddress:
    server: ServerLine


@dataclass(frozen=True)
class SetWeight:
    server: ServerLine


Op = Add | Remove | SetAddress | SetWeight


@dataclass(frozen=True)
class Plan:
    """Either runtime ``ops`` (possibly none) or a ``reload_reason``."""

    ops: tuple[Op, ...] = ()
    reload_reason: str | None = None

    @property
    def live(self) -> bool:
        return self.reload_reason is None


class Planner:
    """Plans from one config text to the next, remembering the last parse: the next plan starts from the config it planned to."""

    def __init__(self) -> None:
        self._last: tuple[str, ParsedConfig | None] | None = None

    def parsed(self, text: str) -> ParsedConfig | None:
        """``parse(text)``, reusing the last plan's parse when it was of the same text."""
        if self._last is not None and self._last[0] == text:
            return self._last[1]
        return parse(text)

    def plan(self, old_text: str | None, new_text: str) -> Plan:
        if old_text is None:
            return Plan(reload_reason="no running config")
        old, new = self.parsed(old_text), parse(new_text)
        self._last = (new_text, new)
        return diff(old, new)


def diff(old: ParsedConfig | None, new: ParsedConfig | None) -> Plan:
    """Runtime operations between two parsed configs, or why a reload is needed."""
    if old is None or new is None:
        return Plan(reload_reason="server lines the planner cannot read")
    if old.skeleton != new.skeleton:
        return Plan(reload_reason="configuration beyond server lines changed")
    ops: list[Op] = []
    for key in sorted(old.servers.keys() - new.servers.keys()):
        ops.append(Remove(*key))
    for key in sorted(new.servers):
        server, before = new.servers[key], old.servers.get(key)
        if before is None:
            ops.append(Add(server))
            continue
        if before.options_without_weight() != server.options_without_weight():
            return Plan(reload_reason=f"options of server {key[0]}/{key[1]} changed")
        if (before.address, before.port) != (server.address, server.port):
            ops.append(SetAddress(server))
        if before.weight != server.weight:
            ops.append(SetWeight(server))
    return Plan(tuple(ops))


def describe(op: Op) -> str:
    """One line per operation, in the runtime API's words."""
    if isinstance(op, Add):
        return f"add server {op.server.backend}/{op.server.name} {op.server.addr_port}" + (
            f" weight {op.server.weight}" if op.server.weight else "")
    if isinstance(op, Remove):
        return f"drain, then delete server {op.backend}/{op.name}"
    if isinstance(op, SetAddress):
        return f"set server {op.server.backend}/{op.server.name} addr {op.server.address} port {op.server.port}"
    return f"set server {op.server.backend}/{op.server.name} weight {op.server.weight or 1}"


def delta(text: str, ops: tuple[Op, ...]) -> str:
    """``text`` without the server lines a live plan leaves alone: the skeleton HAProxy already
    accepted, plus the servers ``ops`` add or change.  Checking this instead of ``text`` costs
    the same at 10 servers or 10,000."""
    keep = {(op.server.backend, op.server.name) for op in ops if not isinstance(op, Remove)}
    out, section, name = [], "", ""
    for raw in text.splitlines(keepends=True):
        line = raw.split("#", 1)[0].strip()
        match = _SECTION.match(line)
        if match:
            section, name = match.group(1), match.group(2)
        words = line.split()
        if section == "backend" and len(words) > 1 and words[0] == "server" and (name, words[1]) not in keep:
            continue
        out.append(raw)
    return "".join(out)
