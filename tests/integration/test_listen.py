"""`disco watch --listen` under clients that misbehave: a slow client trickling its request must not
starve /healthz, /readyz and /metrics, and is cut off once its read timeout is up."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import requests

from testkit import wait_until

from .conftest import Stack
from .test_observe import listen, register

#: What a liveness probe gets: Kubernetes' default timeoutSeconds is 1.
PROBE_DEADLINE = 1.0


def trickle(host: str, port: int, stop: threading.Event, count: int = 3) -> list[socket.socket]:
    """``count`` clients that each send a request one byte every 0.3 s (bounded: 200 bytes, or until ``stop``)."""
    socks = [socket.create_connection((host, port), timeout=5) for _ in range(count)]
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 150 + b"\r\n\r\n"

    def run() -> None:
        for byte in request[:200]:
            if stop.wait(0.3):
                return
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.send(bytes([byte]))

    threading.Thread(target=run, name="trickle", daemon=True).start()
    return socks


def test_a_slow_client_does_not_starve_the_probes_and_is_cut_off(stack: Stack):
    base = listen(stack)
    register(stack, "web-1", 9001)
    wait_until(lambda: stack.consul.passing("web") == ["web-1"], 10, what="web-1 in Consul")
    stack.start_balancer(live=True)
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=1).status_code == 200, 15, what="the watcher ready")

    host, port = base.removeprefix("http://").split(":")
    stop = threading.Event()
    slow = trickle(host, int(port), stop)
    try:
        time.sleep(0.5)  # the slow clients are connected and have begun their requests
        took = []
        for path in ("/healthz", "/readyz", "/metrics") * 3:
            started = time.monotonic()
            answer = requests.get(f"{base}{path}", timeout=5)
            took.append(time.monotonic() - started)
            assert answer.status_code == 200, (path, answer.status_code)
        assert max(took) < PROBE_DEADLINE, f"answers took up to {max(took):.3f}s beside a slow client"

        # The head's read timeout (5 s) is for the whole head, not for each byte: the server closes them.
        for sock in slow:
            sock.settimeout(10)
            started = time.monotonic()
            try:
                data = sock.recv(4096)
            except ConnectionResetError:
                data = b""
            assert data == b"", data[:100]
            assert time.monotonic() - started < 8
    finally:
        stop.set()
        for sock in slow:
            sock.close()
    assert requests.get(f"{base}/healthz", timeout=2).status_code == 200
    assert stack.watch is not None and stack.watch.alive()
