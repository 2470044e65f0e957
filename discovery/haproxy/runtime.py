"""HAProxy's runtime API (an admin-level stats socket): add, change, drain and delete servers live."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import LiveUpdateFailed, ReloadError
from .master import socket_command


@dataclass(frozen=True)
class ServerState:
    """One row of ``show servers state``."""

    name: str
    address: str
    port: int
    op_state: int  # 0 stopped, 1 starting, 2 running, 3 stopping
    admin_state: int  # bit flags: 0x01/0x02/0x04/0x20 maintenance, 0x08/0x10 drain
    weight: int = 1  # the user weight (srv_uweight)
    check_state: int | None = None  # srv_check_state flags (0x02: a check is configured)
    # From ``show stat`` (``servers(full=True)``); None: not asked.
    backup: bool | None = None  # the bck column
    maxconn: int | None = None  # the slim column; 0: no limit
    cookie: str | None = None  # the cookie column: None unless a static cookie is wanted

    @property
    def in_maintenance(self) -> bool:
        return bool(self.admin_state & 0x27)

    @property
    def draining(self) -> bool:
        return bool(self.admin_state & 0x18)


class RuntimeAPI:
    """HAProxy's runtime API on an admin-level stats socket (``stats socket PATH level admin``).

    Every failure, whether the socket cannot be reached, drops the connection or
    HAProxy answers with anything but its success message, raises
    LiveUpdateFailed: the caller falls back to a validated reload.
    """

    def __init__(self, path: Path, timeout: float = 2.0) -> None:
        self.path = path
        self.timeout = timeout

    def ask(self, command: str) -> str:
        """Send one command and return the answer; any socket failure is a LiveUpdateFailed."""
        try:
            return socket_command(self.path, command, self.timeout).strip()
        except ReloadError as exc:  # HAProxyUnavailable included
            raise LiveUpdateFailed(f"runtime API: {exc}") from exc

    def run(self, command: str, expect: str = "", *also: str) -> str:
        """Send a command that answers ``expect`` (or one of ``also``) on success, or nothing if empty."""
        answer = self.ask(command)
        ok = any(e in answer for e in (expect, *also)) if expect else not answer
        if not ok:
            raise LiveUpdateFailed(f"runtime API refused {command!r}: {answer[:200] or 'no answer'}")
        return answer

    def add_server(self, backend: str, name: str, addr_port: str, options: tuple[str, ...]) -> None:
        """Dynamic servers start in maintenance with checks off: enable both, in that order."""
        self.run(f"add server {backend}/{name} {addr_port} {' '.join(options)}".rstrip(), "New server registered")
        if "check" in options:
            self.run(f"enable health {backend}/{name}")
        self.set_state(backend, name, "ready")

    def set_state(self, backend: str, name: str, state: str) -> None:
        self.run(f"set server {backend}/{name} state {state}")

    def set_address(self, backend: str, name: str, address: str, port: int) -> None:
        self.run(f"set server {backend}/{name} addr {address} port {port}", "changed", "no need")

    def set_weight(self, backend: str, name: str, weight: str) -> None:
        self.run(f"set server {backend}/{name} weight {weight}")

    def refresh_dynamic_cookies(self, backend: str, key: str) -> None:
        """Give every server of a ``cookie ... dynamic`` backend its cookie, live-added ones included.

        HAProxy 2.6 refuses ``cookie`` on ``add server``, and a server added live gets no
        dynamic cookie (it answers with an empty, expired one) until the key is set and
        dynamic cookies enabled again for its backend: checked in tests/integration/test_sticky.py.
        """
        self.run(f"set dynamic-cookie-key backend {backend} {key}")
        self.run(f"enable dynamic-cookie backend {backend}")

    def cookies(self, backend: str) -> dict[str, str]:
        """Each server's cookie (``show stat``'s cookie column), by server name; "" for none."""
        lines = self.ask(f"show stat {backend} 4 -1").splitlines()
        if not lines or not lines[0].startswith("# "):
            raise LiveUpdateFailed(f"runtime API: unexpected answer to show stat: {lines[:1]}")
        columns = lines[0][2:].split(",")
        if "cookie" not in columns:
            raise LiveUpdateFailed("runtime API: show stat has no cookie column")
        at = columns.index("cookie")
        rows = (line.split(",") for line in lines[1:] if line)
        return {row[1]: row[at] for row in rows if len(row) > at and row[0] == backend}

    def delete_server(self, backend: str, name: str) -> None:
        """Maintenance, close what is left, delete: the order ``del server`` requires."""
        self.set_state(backend, name, "maint")
        self.ask(f"shutdown sessions server {backend}/{name}")
        self.run(f"del server {backend}/{name}", "Server deleted")

    def used_connections(self, backend: str, name: str) -> int:
        """Connections in use, plus sessions still assigned to the server (``show stat`` scur): a
        request waiting to retry its connection has no connection yet, and deleting the server
        under it would fail it instead of letting it be redispatched."""
        used = 0
        for line in self.ask(f"show servers conn {backend}").splitlines():
            words = line.split()
            if words and words[0] == f"{backend}/{name}" and len(words) > 6 and words[6].isdigit():
                used = int(words[6])
        return used + self._stat(backend).get(name, {}).get("scur", 0)

    def _stat(self, backend: str) -> dict[str, dict[str, int]]:
        """``show stat`` of a backend's servers: server name -> the numeric columns."""
        lines = self.ask(f"show stat {backend} 4 -1").splitlines()
        if not lines or not lines[0].startswith("# "):
            return {}
        columns = lines[0][2:].split(",")
        rows = (line.split(",") for line in lines[1:] if line)
        return {
            row[1]: {c: int(v) for c, v in zip(columns, row, strict=False) if v.isdigit()}
            for row in rows
            if len(row) > 2 and row[0] == backend
        }

    def servers(self, backend: str, full: bool = False, only: Iterable[str] | None = None) -> dict[str, ServerState]:
        """``show servers state`` of one backend, by server name; with ``full``, also what only
        ``show stat`` reports (backup, maxconn, cookie): every option the read-back compares
        (:mod:`~discovery.haproxy.options`), for every server or for those named by ``only``
        (one short ``show stat`` each: a live change in a backend of 10,000 servers reads back
        the few it touched, not a 4 MB table)."""
        result, ids = {}, {}
        for line in self.ask(f"show servers state {backend}").splitlines():
            words = line.split()
            if len(words) > 18 and words[1] == backend and words[0].isdigit():
                ids[words[3]] = f"{words[0]} 4 {words[2]}"
                result[words[3]] = ServerState(
                    words[3],
                    words[4],
                    int(words[18]),
                    int(words[5]),
                    int(words[6]),
                    int(words[7]),
                    int(words[13]) if words[13].isdigit() else None,
                )
        if not full or not result:
            return result
        names = None if only is None else [n for n in dict.fromkeys(only) if n in ids]
        if names is None or len(names) > self.FEW:
            stat = self._stat_text(backend, f"{backend} 4 -1")
        else:
            stat = {k: v for name in names for k, v in self._stat_text(backend, ids[name]).items()}
        for name, row in stat.items():
            if name in result:
                result[name] = replace(
                    result[name],
                    backup=row.get("bck") == "1",
                    maxconn=int(row.get("slim") or 0),
                    cookie=row.get("cookie") or None,
                )
        return result

    #: Up to this many servers are read back one ``show stat`` each; more, the whole backend at once.
    FEW = 64

    def _stat_text(self, backend: str, which: str) -> dict[str, dict[str, str]]:
        """``show stat WHICH`` (``BACKEND 4 -1``, or ``BE_ID 4 SRV_ID``): server name -> every column, as text."""
        lines = self.ask(f"show stat {which}").splitlines()
        if not lines or not lines[0].startswith("# "):
            raise LiveUpdateFailed(f"runtime API: unexpected answer to show stat: {lines[:1]}")
        columns = lines[0][2:].split(",")
        rows = (line.split(",") for line in lines[1:] if line)
        return {row[1]: dict(zip(columns, row, strict=False)) for row in rows if len(row) > 2 and row[0] == backend}
