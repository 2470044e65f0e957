"""Real processes for tests and benchmarks: bounded waits, child processes with a log file each,
and requests through a load balancer.  Every wait is bounded; every process is stopped by
whoever started it."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

__all__ = ["DISCO", "REPO", "Proc", "instances_reached", "wait_until", "webapp_command"]

REPO = Path(__file__).resolve().parents[1]
DISCO = [sys.executable, "-m", "discovery.cli"]


def webapp_command(port: int, instance: str, fail_file: Path | None = None) -> list[str]:
    """The demo webapp (webapp/app.py) on 127.0.0.1:``port``, answering as ``instance``; with
    ``fail_file``, its health check fails while that file exists."""
    command = [
        sys.executable,
        str(REPO / "webapp/app.py"),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--id",
        instance,
    ]
    return [*command, "--fail-file", str(fail_file)] if fail_file is not None else command


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail (AssertionError) after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}: {last_exc}")


class Proc:
    """A child process in its own session, with its output in a log file."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.log = log
        self._fh = open(log, "ab")  # noqa: SIM115  (open for the process's life; closed in stop())
        self.popen = subprocess.Popen(
            argv,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=REPO,
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(5)
        self._fh.close()
        return self.popen.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def instances_reached(url: str, requests_count: int = 30) -> collections.Counter[str]:
    """Which instances answered ``requests_count`` fresh requests through the load balancer."""
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(requests_count):
        response = requests.get(url, timeout=3, headers={"Connection": "close"})
        seen[response.headers.get("X-Instance", f"status {response.status_code}")] += 1
    return seen
