"""Talk to a running HAProxy: the master CLI (``haproxy -W -S SOCKET``) and reload commands.

HAProxy 2.6's master CLI ``reload`` does not say whether it worked (that came
in 2.7), so we read ``show proc`` before and after: the master's reload counter
moves, and either its failed counter moves too (HAProxy refused the config and
the old worker keeps serving) or a new worker appears.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import ConfigError, HAProxyUnavailable, ReloadError


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
        with contextlib.suppress(ReloadError):  # the master re-executes itself and may drop the connection
            socket_command(self.path, "reload")
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
        if shutil.which(self.argv[0]) is None:
            raise ConfigError(f"--reload-cmd: command not found: {self.argv[0]}")
        self.timeout = timeout

    def reload(self) -> str:
        try:
            proc = subprocess.run(self.argv, capture_output=True, text=True, timeout=self.timeout, check=False)
        except FileNotFoundError as exc:  # it was there at start
            raise ReloadError(f"reload command not found: {self.argv[0]}") from exc
        except subprocess.TimeoutExpired as exc:
            raise ReloadError(f"reload command did not finish in {self.timeout:.0f}s") from exc
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ReloadError(f"reload command exited {proc.returncode}: {last[0][:300]}")
        return f"{self.argv[0]} exited 0"
