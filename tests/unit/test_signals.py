"""Signal handling must never take a lock the interrupted thread may hold (core issue, defect 5)."""

from __future__ import annotations

import signal
import threading

from discovery.signals import SignalRelay


def test_handler_returns_while_the_interrupted_thread_holds_the_stop_events_lock():
    """A handler runs on the thread it interrupts.  If that thread was inside ``Event.wait`` (holding the
    event's internal lock), a handler that calls ``Event.set`` deadlocks; the relay's handler must not."""
    stop = threading.Event()
    relay = SignalRelay(stop.set)
    returned = threading.Event()

    def interrupted_thread() -> None:
        with stop._cond:  # what Event.wait holds while it checks the flag
            relay.handler(signal.SIGTERM)  # the signal lands here
            returned.set()

    thread = threading.Thread(target=interrupted_thread, daemon=True)
    thread.start()
    thread.join(2.0)
    assert returned.is_set() and not thread.is_alive(), "the signal handler blocked on a lock"
    assert stop.wait(2.0), "the stop request was never delivered"


def test_every_signal_reaches_the_action_once():
    calls: list[int] = []
    done = threading.Event()

    def action() -> None:
        calls.append(1)
        if len(calls) == 3:
            done.set()

    relay = SignalRelay(action)
    for _ in range(3):
        relay.handler(signal.SIGTERM)
    assert done.wait(2.0) and len(calls) == 3
