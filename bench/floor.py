"""The floor: what the machine allows, measured the same way as the contenders, in the same run.

Not a contender: a plain blocking-query client (raw HTTP, no processing) on
``/v1/health/service/web?passing=1`` sees the new index after the same Consul API
call the contenders are timed from.  That delay, plus the probe client's own cost
per request (a contender is only seen through a probe), is the least any
Consul-driven balancer could take on this machine.
"""

from __future__ import annotations

import http.client
import threading
import time

from testkit import ConsulAgent


class BlockingQueryClient:
    """Long-polls one endpoint in a thread; remembers when each new index arrived."""

    def __init__(self, consul: ConsulAgent, path: str = "/v1/health/service/web?passing=1") -> None:
        self.port = int(consul.url.rsplit(":", 1)[1])
        self.path = path
        self.arrivals: list[float] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="floor", daemon=True)

    def start(self) -> None:
        self._thread.start()
        with self._changed:
            self._changed.wait_for(lambda: self.arrivals, timeout=10)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        index = 0
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=70)
        while not self._stop.is_set():
            sep = "&" if "?" in self.path else "?"
            conn.request("GET", f"{self.path}{sep}index={index}&wait=60s")
            response = conn.getresponse()
            response.read()
            got = int(response.headers.get("X-Consul-Index", "0"))
            now = time.perf_counter()
            if got != index:
                index = max(got, 1)
                with self._changed:
                    self.arrivals.append(now)
                    self._changed.notify_all()

    def seen_after(self, t0: float, deadline: float = 10.0) -> float:
        """Seconds from ``t0`` to the first new index that arrived after it."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.arrivals and self.arrivals[-1] >= t0, timeout=deadline):
                raise TimeoutError("the blocking query saw no new index")
            return next(a for a in self.arrivals if a >= t0) - t0
