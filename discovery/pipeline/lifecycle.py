"""The threads a watcher owns: started, watched and joined by one owner.

A worker thread that raises, or returns while nobody asked it to stop, is a
failure: it is logged with its traceback, the owner's ``notify`` wakes the
pipeline loop, and :meth:`Workers.check` raises WorkerFailed there, so the
process exits non-zero and its supervisor restarts it instead of idling with a
dead watch.
A worker may also have a stop of its own (a follow that ends when its service leaves): it may
return once that is set, and :meth:`Workers.stop_and_join` sets it too.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from ..errors import WorkerFailed

log = logging.getLogger(__name__)


class Workers:
    def __init__(
        self, stop: threading.Event, notify: Callable[[], None], interrupt: Callable[[], None] = lambda: None
    ) -> None:
        """``interrupt`` wakes workers blocked in I/O once ``stop`` is set (it ends Consul's long polls)."""
        self.stop = stop
        self.notify = notify
        self.interrupt = interrupt
        self._threads: list[threading.Thread] = []
        self._own_stops: list[threading.Event] = []
        self._failures: queue.SimpleQueue[str] = queue.SimpleQueue()

    def start(self, name: str, target: Callable[[], None], stop: threading.Event | None = None) -> None:
        """Run ``target`` in a thread; with ``stop``, it may return once that is set (which stopping
        every worker sets too)."""

        def body() -> None:
            try:
                target()
            except BaseException as exc:
                log.error("thread %s failed", name, exc_info=exc)
                self._failures.put(f"thread {name} failed: {type(exc).__name__}: {exc}")
                self.notify()
                return
            if not self.stop.is_set() and not (stop is not None and stop.is_set()):
                self._failures.put(f"thread {name} ended unexpectedly")
                self.notify()

        thread = threading.Thread(target=body, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]  # workers that ended on their own stop
        self._threads.append(thread)
        if stop is not None:
            self._own_stops = [s for s in self._own_stops if not s.is_set()]
            self._own_stops.append(stop)
            if self.stop.is_set():
                stop.set()
        thread.start()

    def check(self) -> None:
        """Raise WorkerFailed if any worker failed (called on the pipeline's thread)."""
        try:
            failure = self._failures.get_nowait()
        except queue.Empty:
            return
        raise WorkerFailed(f"{failure}; stopping so the supervisor restarts disco")

    def stop_and_join(self, timeout: float = 2.0) -> list[str]:
        """Stop every worker and wait up to ``timeout`` in all; return the names still running.

        Workers blocked in I/O are woken by ``interrupt``; one that still does not return in
        time is a daemon thread and ends with the process.
        """
        self.stop.set()
        for own in self._own_stops:
            own.set()
        deadline = time.monotonic() + timeout
        while True:
            # Again while waiting: a worker that took a connection just before the stop may have opened it anew.
            try:
                self.interrupt()
            except Exception as exc:
                log.warning("interrupting the workers failed: %s", exc)
            alive = [t for t in self._threads if t.is_alive()]
            left = deadline - time.monotonic()
            if not alive or left <= 0:
                return [t.name for t in alive]
            alive[0].join(min(0.1, left))
