"""Ports on 127.0.0.1 for the demo: is each free, who holds it, and one clear error before anything starts."""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from .consul.agent import free_port
from .errors import ConfigError, DiscoveryError


@dataclass(frozen=True)
class Port:
    """One port the demo binds on 127.0.0.1, what it is for, and the flag that moves it."""

    number: int
    purpose: str
    flag: str = ""
    udp: bool = False  # Consul's gossip ports take UDP as well as TCP


def parse_ports(text: str | None) -> tuple[int, int, int] | None:
    """``--consul-ports LAN,WAN,RPC``: three port numbers (checked for range and use by :func:`preflight`)."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        raise ConfigError(f"--consul-ports {text!r}: expected three port numbers, LAN,WAN,RPC (e.g. 8301,8302,8300)")
    return int(parts[0]), int(parts[1]), int(parts[2])


def pick_consul_ports(avoid: set[int]) -> tuple[int, int, int]:
    """Serf LAN, serf WAN (TCP and UDP) and server RPC ports, none in ``avoid`` (the user's ports)."""
    picked: list[int] = []
    for _ in range(100):
        port = free_port()
        if port not in avoid and port not in picked and (len(picked) == 2 or _bind_error(port, udp=True) is None):
            picked.append(port)
        if len(picked) == 3:
            return picked[0], picked[1], picked[2]
    raise DiscoveryError("found no free ports on 127.0.0.1 for Consul's gossip and RPC")


def _bind_error(port: int, udp: bool = False) -> OSError | None:
    """Bind ``port`` on 127.0.0.1 once; None when free.  SO_REUSEADDR as HAProxy, Consul and
    http.server set it: TIME_WAIT leftovers of an earlier run do not count, a listener does."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc
    return None


def port_holder(port: int, udp: bool = False) -> str:
    """Best effort, from /proc: ``"NAME (pid N)"`` of the process bound to ``port``, or ``""``."""
    inodes = set()
    for table in ("udp", "udp6") if udp else ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and (udp or fields[3] == "0A"):  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for pid in (p for p in (os.listdir("/proc") if inodes else ()) if p.isdigit()):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                return f"{Path(f'/proc/{pid}/comm').read_text().strip()} (pid {pid})"
        except OSError:  # gone, or not ours to read
            continue
    return ""


def preflight(ports: list[Port]) -> None:
    """Raise ConfigError, in one line, unless every port is valid, distinct and free on 127.0.0.1."""
    first: dict[int, Port] = {}
    for port in ports:
        if not 1 <= port.number <= 65535:
            raise ConfigError(f"port {port.number} ({port.purpose}, {port.flag}) is not a port number (1-65535)")
        if (other := first.setdefault(port.number, port)) is not port:
            raise ConfigError(
                f"port {port.number} is asked for twice: {other.purpose} ({other.flag}) "
                f"and {port.purpose} ({port.flag})"
            )
    problems, taken = [], []
    for port in ports:
        if (exc := _bind_error(port.number, port.udp)) is None:
            continue
        taken.append(port)
        holder = port_holder(port.number, port.udp) if exc.errno == errno.EADDRINUSE else ""
        problems.append(
            f"{port.number}{'/udp' if port.udp else ''} ({port.purpose}"
            f"{', ' + port.flag if port.flag else ''}) on 127.0.0.1 "
            + (
                f"is in use{' by ' + holder if holder else ''}"
                if exc.errno == errno.EADDRINUSE
                else f"cannot be bound ({exc.strerror})"
            )
        )
    if problems:
        flags = ", ".join(sorted({p.flag for p in taken if p.flag}))
        fix = f"choose {'another port' if len(problems) == 1 else 'other ports'} with {flags}" if flags else "retry"
        raise ConfigError(
            f"port {problems[0]}: stop it or {fix}; nothing was started"
            if len(problems) == 1
            else f"ports not free: {', '.join(problems)}: stop them or {fix}; nothing was started"
        )
