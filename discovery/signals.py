"""Signals, handled without taking a lock the interrupted thread may hold.

A Python signal handler runs on the main thread between two bytecodes, possibly
while that thread is inside ``Event.wait`` or ``Queue.get`` holding their
internal lock: a handler that calls ``Event.set`` or ``Queue.put`` can then
deadlock.  The handler here only puts the signal number on a ``SimpleQueue``,
whose ``put`` is documented as reentrant; a relay thread takes it off and runs
the action, where locks are safe.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class SignalRelay:
    """Turns signals into calls of ``action`` on a relay thread."""

    def __init__(self, action: Callable[[], None], what: str = "stopping") -> None:
        self.action = action
        self.what = what
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._relay, name="signals", daemon=True)
        self._thread.start()

    def handler(self, signum: int, _frame: object = None) -> None:
        """The signal handler itself: one reentrant put, nothing else."""
        self._signals.put(signum)

    def install(self, *signums: int) -> None:
        for signum in signums:
            signal.signal(signum, self.handler)

    def _relay(self) -> None:
        while True:
            signum = self._signals.get()
            log.info("signal %s: %s", signal.Signals(signum).name, self.what)
            self.action()
