"""A TCP proxy on loopback that can turn the connections it carries half-open.

``blackhole()`` makes every connection open at that moment stop forwarding in both
directions without closing: the peers see a silent, open socket, as after a NAT or firewall
drops its state, or a host vanishes.  Connections made afterwards are forwarded normally, so
a client that notices (a read timeout) and reconnects goes on working.  While nothing listens
behind it, it accepts each connection and closes it with no answer, as an L4 load balancer or
Docker's userland proxy does.
"""

from __future__ import annotations

import select
import socket
import threading
from dataclasses import dataclass, field

from .ports import take_port

__all__ = ["HalfOpenProxy"]


@dataclass
class _Pair:
    client: socket.socket
    upstream: socket.socket
    silent: threading.Event = field(default_factory=threading.Event)


class HalfOpenProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``; one thread per connection."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = take_port()
        self._listener = socket.create_server(("127.0.0.1", self.port), backlog=64)
        self._listener.settimeout(0.2)
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.silenced = 0
        self._thread = threading.Thread(target=self._accept, name="half-open-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def blackhole(self) -> int:
        """Silence every connection open now (kept open, never forwarded again); return how many."""
        with self._lock:
            live = [p for p in self._pairs if not p.silent.is_set()]
            for pair in live:
                pair.silent.set()
            self.silenced += len(live)
            return len(live)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            for pair in self._pairs:
                for sock in (pair.client, pair.upstream):
                    sock.close()
            self._pairs.clear()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by stop()
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                client.close()  # nothing behind: accepted, then closed with no answer (as an L4 proxy does)
                continue
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs = [p for p in self._pairs if p.client.fileno() != -1]
                self._pairs.append(pair)
            threading.Thread(target=self._pump, args=(pair,), name="half-open-pump", daemon=True).start()

    def _pump(self, pair: _Pair) -> None:
        ends = {pair.client: pair.upstream, pair.upstream: pair.client}
        try:
            while not self._stop.is_set():
                if pair.silent.is_set():
                    self._stop.wait(0.5)  # half-open: hold both sockets, move nothing, until the end
                    continue
                ready, _, _ = select.select(list(ends), [], [], 0.2)
                for sock in ready:
                    if pair.silent.is_set():
                        break
                    data = sock.recv(65536)
                    if not data:
                        return
                    ends[sock].sendall(data)
        except OSError:
            return
        finally:
            if not pair.silent.is_set():
                for sock in ends:
                    sock.close()
