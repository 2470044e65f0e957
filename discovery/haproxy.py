"""Talk to a running HAProxy: the master CLI (``haproxy -W -S SOCKET``) and reload commands.

HAProxy 2.6's master CLI ``reload`` does not say whether it worked (that came
in 2.7), so we read ``show proc`` before and after: the master's reload counter
moves, and either its failed counter moves too (HAProxy refused the config and
the old worker keeps serving) or a new worker appears.
"""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import ConfigError, HAProxyUnavailable, LiveUpdateFailed, ReloadError


class Reloader(Protocol):
    """Makes HAProxy load the config file that is now on disk."""

    def reload(self) -> str:
        """Reload; return a short description of what happened, or raise ReloadError."""
        ...


@dataclass(frozen=True)
class ProcState:
    """What ``show proc`` on the master CLI says."""

    master_pid: int
    reloads: int
    failed: int
    workers: tuple[int, ...]


_MASTER_LINE = re.compile(r"^(\d+)\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]", re.M)
_WORKER_LINE = re.compile(r"^(\d+)\s+worker\s+\d+", re.M)


def parse_show_proc(text: str) -> ProcState:
    master = _MASTER_LINE.search(text)
    if master is None:
        raise ReloadError(f"unexpected answer to 'show proc': {text.strip()[:200]!r}")
    workers_part = text.split("# workers", 1)[1].split("# programs", 1)[0] if "# workers" in text else ""
    workers = tuple(int(m.group(1)) for m in _WORKER_LINE.finditer(workers_part))
    return ProcState(int(master.group(1)), int(master.group(2)), int(master.group(3)), workers)


def socket_command(path: Path, command: str, timeout: float = 5.0) -> str:
    """Send one command to an HAProxy UNIX socket and read the answer to EOF."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(command.encode() + b"\n")
            sock.shutdown(socket.SHUT_WR)  # the CLI answers once it sees the end of input
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise HAProxyUnavailable(f"no HAProxy answers on {path}") from exc
    except OSError as exc:
        raise ReloadError(f"HAProxy socket {path}: {exc}") from exc
    return b"".join(chunks).decode(errors="replace")


class MasterSocket:
    """Reload through the master CLI and confirm it with ``show proc``."""

    def __init__(self, path: Path, timeout: float = 10.0, poll: float = 0.005) -> None:
        self.path = path
        self.timeout = timeout
        self.poll = poll

    def state(self) -> ProcState:
        return parse_show_proc(socket_command(self.path, "show proc"))

    def reload(self) -> str:
        before = self.state()
        try:
            socket_command(self.path, "reload")
        except ReloadError:
            pass  # the master re-executes itself and may drop the connection
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            time.sleep(self.poll)
            try:
                now = self.state()
            except ReloadError:
                continue  # master CLI not back yet
            if now.reloads <= before.reloads:
                continue
            if now.failed > before.failed:
                raise ReloadError("HAProxy refused the new config on reload; the previous worker keeps serving")
            new = [pid for pid in now.workers if pid not in before.workers]
            if new:
                return f"new worker {new[0]}"
        raise ReloadError(f"HAProxy did not confirm the reload within {self.timeout:.0f}s")


class CommandReloader:
    """Run a user's reload command (``--reload-cmd``), without a shell."""

    def __init__(self, command: str, timeout: float = 30.0) -> None:
        try:
            self.argv = shlex.split(command)
        except ValueError as exc:
            raise ConfigError(f"invalid --reload-cmd {command!r}: {exc}") from exc
        if not self.argv:
            raise ConfigError("--reload-cmd is empty")
        self.timeout = timeout

    def reload(self) -> str:
        try:
            proc = subprocess.run(self.argv, capture_output=True, text=True, timeout=self.timeout, check=False)
        except FileNotFoundError as exc:
            raise ConfigError(f"reload command not found: {self.argv[0]}") from exc
        except subprocess.TimeoutExpired as exc:
            raise ReloadError(f"reload command did not finish in {self.timeout:.0f}s") from exc
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ReloadError(f"reload command exited {proc.returncode}: {last[0][:300]}")
        return f"{self.argv[0]} exited 0"


@dataclass(frozen=True)
class ServerState:
    """One row of ``show servers state``."""

    name: str
    address: str
    port: int
    op_state: int      # 0 stopped, 1 starting, 2 running, 3 stopping
    admin_state: int   # bit flags: 0x01/0x02/0x04/0x20 maintenance, 0x08/0x10 drain

    @property
    def in_maintenance(self) -> bool:
        return bool(self.admin_state & 0x27)

    @property
    def draining(self) -> bool:
        return bool(self.admin_state & 0x18)


class RuntimeAPI:
    """HAProxy's runtime API on an admin-level stats socket (``stats socket PATH level admin``).

    Every command is checked against the answer HAProxy gives on success; anything
    else raises LiveUpdateFailed so the caller can fall back to a reload.
    """

    def __init__(self, path: Path, timeout: float = 2.0) -> None:
        self.path = path
        self.timeout = timeout

    def run(self, command: str, expect: str = "") -> str:
        try:
            answer = socket_command(self.path, command, self.timeout).strip()
        except ReloadError as exc:
            raise LiveUpdateFailed(f"runtime API: {exc}") from exc
        if expect not in answer or (not expect and answer):
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
        answer = socket_command(self.path, f"set server {backend}/{name} addr {address} port {port}",
                                self.timeout).strip()
        if "changed" not in answer and "no need" not in answer:
            raise LiveUpdateFailed(f"runtime API refused the new address of {backend}/{name}: {answer[:200]}")

    def set_weight(self, backend: str, name: str, weight: str) -> None:
        self.run(f"set server {backend}/{name} weight {weight}")

    def delete_server(self, backend: str, name: str) -> None:
        """Maintenance, close what is left, delete: the order ``del server`` requires."""
        self.set_state(backend, name, "maint")
        socket_command(self.path, f"shutdown sessions server {backend}/{name}", self.timeout)
        self.run(f"del server {backend}/{name}", "Server deleted")

    def used_connections(self, backend: str, name: str) -> int:
        answer = socket_command(self.path, f"show servers conn {backend}", self.timeout)
        for line in answer.splitlines():
            words = line.split()
            if words and words[0] == f"{backend}/{name}" and len(words) > 6 and words[6].isdigit():
                return int(words[6])
        return 0

    def servers(self, backend: str) -> dict[str, ServerState]:
        answer = socket_command(self.path, f"show servers state {backend}", self.timeout)
        result = {}
        for line in answer.splitlines():
            words = line.split()
            if len(words) > 18 and words[1] == backend and words[0].isdigit():
                result[words[3]] = ServerState(words[3], words[4], int(words[18]), int(words[5]), int(words[6]))
        return result
