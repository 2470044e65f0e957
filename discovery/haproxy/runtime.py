"""HAProxy's runtime API (an admin-level stats socket): add, change, drain and delete servers live."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import LiveUpdateFailed, ReloadError
from .master import socket_command


@dataclass(frozen=True)
class ServerState:
    """One row of ``show servers state``."""

    name: str
    address: str
    port: int
    op_state: int      # 0 stopped, 1 starting, 2 running, 3 stopping
    admin_state: int   # bit flags: 0x01/0x02/0x04/0x20 maintenance, 0x08/0x10 drain
    weight: int = 1    # the user weight (srv_uweight)

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

    def delete_server(self, backend: str, name: str) -> None:
        """Maintenance, close what is left, delete: the order ``del server`` requires."""
        self.set_state(backend, name, "maint")
        self.ask(f"shutdown sessions server {backend}/{name}")
        self.run(f"del server {backend}/{name}", "Server deleted")

    def used_connections(self, backend: str, name: str) -> int:
        for line in self.ask(f"show servers conn {backend}").splitlines():
            words = line.split()
            if words and words[0] == f"{backend}/{name}" and len(words) > 6 and words[6].isdigit():
                return int(words[6])
        return 0

    def servers(self, backend: str) -> dict[str, ServerState]:
        """``show servers state`` of one backend, by server name."""
        result = {}
        for line in self.ask(f"show servers state {backend}").splitlines():
            words = line.split()
            if len(words) > 18 and words[1] == backend and words[0].isdigit():
                result[words[3]] = ServerState(words[3], words[4], int(words[18]), int(words[5]), int(words[6]),
                                               int(words[7]))
        return result
