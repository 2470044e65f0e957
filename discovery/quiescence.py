"""When to act on a burst of changes.  Pure: the caller passes the clock.

Like consul-template's ``wait {min, max}``: after a change, wait until ``min``
passes with no further change, but never longer than ``max`` after the first
one.  On top of that, the quiet time adapts: when changes keep arriving right
after an apply (a flapping check, a rolling deploy), the effective ``min``
doubles, up to ``max``, so a storm of changes costs a bounded number of
applies; after a quiet spell it falls back to ``min``.  An isolated change is
therefore applied after ``min``, a storm at most once per ``max``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Quiescence:
    min: float
    max: float
    _quiet: float = -1.0
    _first: float | None = None
    _last: float | None = None
    _last_flush: float = float("-inf")

    def __post_init__(self) -> None:
        self._quiet = self.min

    @property
    def pending(self) -> bool:
        return self._first is not None

    def change(self, now: float) -> None:
        """A change arrived at ``now``."""
        if self._first is None:
            # Changes that follow an apply closely mean churn: be patient for longer.
            if now - self._last_flush < self._quiet + self.min:
                self._quiet = min(self._quiet * 2 or self.min, self.max)
            elif now - self._last_flush > self.max:
                self._quiet = self.min
            self._first = now
        self._last = now

    def deadline(self) -> float | None:
        """When the pending changes are due, or None when nothing is pending."""
        if self._first is None or self._last is None:
            return None
        return min(self._last + self._quiet, self._first + self.max)

    def due(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def flushed(self, now: float) -> None:
        """The pending changes were acted on at ``now``."""
        self._first = self._last = None
        self._last_flush = now

    @property
    def quiet(self) -> float:
        """The quiet time currently asked of a burst (between ``min`` and ``max``)."""
        return self._quiet
