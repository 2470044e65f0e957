"""tenacity's stop and sleep for loops that a ``threading.Event`` stops: a retry waits on the
event, so stopping ends the wait at once and no new attempt starts."""

from __future__ import annotations

import threading
from collections.abc import Callable

import tenacity


def stopped(event: threading.Event) -> tenacity.stop.stop_base:
    """Stop retrying once ``event`` is set."""
    return tenacity.stop_when_event_set(event)


def sleeper(event: threading.Event) -> Callable[[float], None]:
    """Sleep between attempts by waiting on ``event``: a stop wakes the wait at once."""

    def sleep(seconds: float) -> None:
        event.wait(seconds)

    return sleep
