"""TCP/UDP ports for tests and benchmarks that no one else is handed: not by the kernel, not
by a concurrent test run, not by a benchmark.

Three guards, each against a different way a "free port" goes wrong:

- The range lies outside the kernel's ephemeral range (``ip_local_port_range``), so no
  outgoing connection and no ``bind(port 0)`` elsewhere on the machine is given one of them.
- Each port is reserved with an exclusive ``flock`` on ``<lock dir>/<port>.lock``, held open
  until the process exits (or :meth:`PortAllocator.release`), so two allocators (two pytest
  runs, a test and a benchmark, two allocators in one process) never hand out the same port.
  The kernel drops the lock when the holder dies: no stale reservations.
- Right before a port is handed out, it is bound on every address asked for (TCP without
  ``SO_REUSEADDR``, and UDP: Consul's serf ports use both), so a port some other program
  listens on, or one still in TIME_WAIT, is skipped.

The sockets used for the check are closed again, so the process that uses the port can bind
it; what keeps others off it in the meantime is the range (the kernel) and the lock (us).

Usage::

    from testkit.ports import take_port, take_ports
    lb = take_port()
    first = take_ports(3)[0]             # three consecutive ports: first, first + 1, first + 2
    published = take_port(hosts=PUBLISHED)   # for Docker: bindable on 0.0.0.0 too
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import socket
import threading
from collections.abc import Iterable
from pathlib import Path

__all__ = ["LOCAL", "PUBLISHED", "PortAllocator", "PortsExhausted", "default_range", "take_port", "take_ports"]

LOCAL: tuple[str, ...] = ("127.0.0.1",)
PUBLISHED: tuple[str, ...] = ("127.0.0.1", "0.0.0.0")

PREFERRED = (20000, 32000)
LOCK_DIR = Path(os.environ.get("DISCO_TEST_PORTS_DIR", "/tmp/disco-test-ports"))


class PortsExhausted(RuntimeError):
    """No port (or block of ports) in the range is free."""


def ephemeral_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> tuple[int, int]:
    """The kernel's ephemeral range, inclusive; Linux's default if it cannot be read."""
    try:
        low, high = (int(x) for x in path.read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def default_range(ephemeral: tuple[int, int] | None = None) -> tuple[int, int]:
    """The ports to hand out, inclusive: ``$DISCO_TEST_PORT_RANGE`` (``LOW-HIGH``) if set, else
    20000–32000 cut short of the ephemeral range, else the largest gap beside it."""
    explicit = os.environ.get("DISCO_TEST_PORT_RANGE")
    if explicit:
        low, _, high = explicit.partition("-")
        return int(low), int(high)
    e_low, e_high = ephemeral or ephemeral_range()
    low, high = PREFERRED
    if high >= e_low and low <= e_high:  # overlaps: keep the part below the ephemeral range
        high = e_low - 1
    if high - low >= 1000:
        return low, high
    gaps = [(10000, e_low - 1), (e_high + 1, 65535)]  # 10000: clear of common service ports
    low, high = max(gaps, key=lambda g: g[1] - g[0])
    if high - low < 100:
        raise PortsExhausted(
            f"the ephemeral range {e_low}-{e_high} leaves no room for test ports; set DISCO_TEST_PORT_RANGE=LOW-HIGH"
        )
    return low, high


def bindable(port: int, hosts: Iterable[str] = LOCAL) -> bool:
    """Whether ``port`` can be bound right now on every one of ``hosts``, TCP and UDP."""
    for host in hosts:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    return False
    return True


class PortAllocator:
    """Hands out ports, each reserved by a lock file until the process exits or releases it."""

    def __init__(
        self, port_range: tuple[int, int] | None = None, lock_dir: Path = LOCK_DIR, rng: random.Random | None = None
    ) -> None:
        self.low, self.high = port_range or default_range()
        if not 0 < self.low <= self.high < 65536:
            raise ValueError(f"bad port range {self.low}-{self.high}")
        self.lock_dir = lock_dir
        self._rng = rng or random.Random()
        self._held: dict[int, int] = {}  # port -> open file descriptor holding its lock
        self._mutex = threading.Lock()

    @property
    def held(self) -> frozenset[int]:
        return frozenset(self._held)

    def take(self, hosts: Iterable[str] = LOCAL) -> int:
        """One port, reserved and bindable on ``hosts``."""
        return self.take_block(1, hosts)[0]

    def take_block(self, count: int, hosts: Iterable[str] = LOCAL) -> list[int]:
        """``count`` consecutive ports, each reserved and bindable on ``hosts``."""
        if count < 1 or count > self.high - self.low + 1:
            raise ValueError(f"cannot take {count} ports from {self.low}-{self.high}")
        hosts = tuple(hosts)
        self._ensure_lock_dir()
        starts = self.high - count + 1 - self.low + 1
        offset = self._rng.randrange(starts)  # spread concurrent allocators over the range
        with self._mutex:
            start = 0
            while start < starts:
                first = self.low + (offset + start) % starts
                taken: list[int] = []
                for port in range(first, first + count):
                    if port in self._held or not self._lock(port):
                        break
                    taken.append(port)
                    if not bindable(port, hosts):
                        break
                else:
                    return taken
                for port in taken:
                    self._unlock(port)
                start += 1
        raise PortsExhausted(f"no {count} consecutive free ports in {self.low}-{self.high}")

    def release(self, port: int) -> None:
        """Give ``port`` back (it is otherwise held until the process exits)."""
        with self._mutex:
            self._unlock(port)

    def release_all(self) -> None:
        with self._mutex:
            for port in list(self._held):
                self._unlock(port)

    def _ensure_lock_dir(self) -> None:
        try:
            self.lock_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.lock_dir, 0o1777)  # shared by every user's test runs, like /tmp
        except PermissionError:
            pass  # made by another user: it is theirs to chmod, and already 1777

    def _lock(self, port: int) -> bool:
        path = self.lock_dir / f"{port}.lock"
        writable = True
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except PermissionError:  # another user's lock file: a read-only descriptor can hold a flock too
            writable = False
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        if writable:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a person looking
        self._held[port] = fd
        return True

    def _unlock(self, port: int) -> None:
        fd = self._held.pop(port, None)
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock


_default: PortAllocator | None = None
_default_mutex = threading.Lock()


def allocator() -> PortAllocator:
    """The process-wide allocator (made on first use)."""
    global _default  # noqa: PLW0603  (one allocator per process, made on first use)
    with _default_mutex:
        if _default is None:
            _default = PortAllocator()
        return _default


def take_port(hosts: Iterable[str] = LOCAL) -> int:
    """A port reserved for this process and bindable on ``hosts`` right now."""
    return allocator().take(hosts)


def take_ports(count: int, hosts: Iterable[str] = LOCAL) -> list[int]:
    """``count`` consecutive ports, reserved for this process and bindable on ``hosts`` right now."""
    return allocator().take_block(count, hosts)
