"""Where the time of one pass goes: a timestamp at each stage, from Consul's answer to HAProxy's read-back.

A pass starts from the oldest change it carries: ``answered_at`` (the blocking
query returned) and ``seen_at`` (the answer was converted to a service).  The
loop and the executor then :meth:`~Timeline.mark` each stage as it ends.  The
result, a :class:`Timed` event, is logged at debug level as one line that the
benchmark reads (``bench/compare.py`` prints the budget per stage) and observed
by the metrics as a histogram per stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

#: The stages of a pass, in order; a pass marks only the ones it goes through.
STAGES = (
    "convert",
    "wait",
    "state",
    "render",
    "decide",
    "write",
    "validate",
    "install",
    "runtime",
    "readback",
    "reload",
)


@dataclass(frozen=True)
class Timed:
    """One pass's stages: (stage, seconds it took), in order; ``answered_at`` is ``time.monotonic``."""

    answered_at: float
    stages: tuple[tuple[str, float], ...]

    @property
    def total(self) -> float:
        return sum(seconds for _, seconds in self.stages)

    def line(self) -> str:
        """The debug log line: ``timeline answered_at=… convert=0.12 … total=…`` (milliseconds)."""
        parts = " ".join(f"{stage}={seconds * 1000:.3f}" for stage, seconds in self.stages)
        return f"timeline answered_at={self.answered_at:.6f} {parts} total={self.total * 1000:.3f}"


class Timeline:
    """Marks of one pass; ``mark(stage)`` records that ``stage`` ended now."""

    def __init__(self, answered_at: float, seen_at: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.answered_at = answered_at
        self._marks: list[tuple[str, float]] = [("convert", seen_at)]

    def mark(self, stage: str) -> None:
        self._marks.append((stage, self.clock()))

    def timed(self) -> Timed:
        stages, previous = [], self.answered_at
        for stage, at in self._marks:
            stages.append((stage, max(0.0, at - previous)))
            previous = at
        return Timed(self.answered_at, tuple(stages))


def no_mark(_stage: str) -> None:
    """For callers that do not time their stages."""
