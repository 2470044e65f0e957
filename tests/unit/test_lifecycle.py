"""Threads the watcher owns: a failure reaches the main loop, which stops (core issue, defect 2)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from discovery.consul.fit import AgentLimits
from discovery.errors import WorkerFailed
from discovery.haproxy.render import DEFAULT_TEMPLATE
from discovery.pipeline.lifecycle import Workers
from discovery.pipeline.watcher import WatchConfig, Watcher


class BrokenCatalog:
    """A catalog whose every call fails in a way no retry rule covers (a bug, a library surprise)."""

    requests = 0
    stale_reasks = 0
    stale = False

    def health_service(self, service, **_):
        raise RuntimeError("unexpected")

    def agent_limits(self):
        return AgentLimits(200, False)

    def service_reader(self, connections, cached):
        catalog = self

        class Reader:
            async def __aenter__(self):
                return self

            async def __aexit__(self, *exc):
                pass

            async def health_service(self, service, **kwargs):
                return catalog.health_service(service, **kwargs)

        return Reader()

    def leader(self):
        return "127.0.0.1:8300"

    def interrupt(self):
        pass


def test_a_dying_watch_thread_stops_the_watcher_with_an_error(tmp_path: Path):
    config = WatchConfig(
        services=("web", "api"),
        template=DEFAULT_TEMPLATE,
        output=tmp_path / "haproxy.cfg",
        validator=None,
        watch_mode="service",
    )
    watcher = Watcher(BrokenCatalog(), config)
    started = time.monotonic()
    with pytest.raises(WorkerFailed, match="thread watch-services failed: RuntimeError: unexpected"):
        watcher.run()
    assert time.monotonic() - started < 5
    assert not (tmp_path / "haproxy.cfg").exists()


def test_a_worker_that_returns_unasked_is_a_failure():
    stop, woken = threading.Event(), threading.Event()
    workers = Workers(stop, woken.set)
    workers.start("quitter", lambda: None)
    assert woken.wait(2.0)
    with pytest.raises(WorkerFailed, match="quitter ended unexpectedly"):
        workers.check()


def test_stop_and_join_is_prompt_and_quiet():
    stop, woken = threading.Event(), threading.Event()
    workers = Workers(stop, woken.set)
    workers.start("waiter", lambda: stop.wait(30))
    started = time.monotonic()
    assert workers.stop_and_join(timeout=2.0) == []
    assert time.monotonic() - started < 1.0
    workers.check()  # stopping on request is not a failure
    assert not woken.is_set()


def test_stop_interrupts_workers_blocked_in_io_until_they_return():
    """A worker blocked in I/O returns when ``interrupt`` wakes it, even one that blocked again
    after the first interrupt (a connection opened anew just before the stop): it is joined."""
    stop, calls, woken = threading.Event(), [], threading.Event()

    def interrupt() -> None:
        calls.append(1)
        if len(calls) >= 2:  # the first interrupt comes too early for this worker
            woken.set()

    workers = Workers(stop, lambda: None, interrupt=interrupt)
    workers.start("poll", lambda: woken.wait(60))
    assert workers.stop_and_join(timeout=30) == []
    assert len(calls) >= 2
