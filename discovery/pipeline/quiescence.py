"""When to act on changes.  Pure: the caller passes the clock.

Two rules, both from what users of consul-template learnt the hard way:

- Quiescence, like consul-template's ``wait {min, max}``: after a change, wait
  until ``min`` passes with no further change, but never longer than ``max``
  after the first one, so a burst (a deploy registering ten instances) becomes
  one apply.  A change that comes after a quiet spell (no change and no apply
  for ``min``) goes out at once: nothing else is pending, and waiting only pays
  off when more changes follow, which are then collapsed as above.  So an
  isolated change never waits on a timer.
- A budget of reloads (a token bucket): ``burst`` reloads at once, then one per
  ``spacing``.  A flapping instance or a rolling deploy that changes the catalog
  faster than that is collapsed into at most one reload per ``spacing``, so it
  cannot cause a reload storm, while isolated changes still go out after ``min``.
  Changes applied live through the runtime API cost nothing and spend no token.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Quiescence:
    min: float
    max: float
    burst: int = 5
    spacing: float = 0.25
    _first: float | None = field(default=None, repr=False)
    _leading: bool = field(default=False, repr=False)
    _last_flush: float = field(default=float("-inf"), repr=False)
    _last: float | None = field(default=None, repr=False)
    _last_change: float = field(default=float("-inf"), repr=False)
    _tokens: float = field(default=-1.0, repr=False)
    _tokens_at: float = field(default=float("-inf"), repr=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)

    @property
    def pending(self) -> bool:
        return self._first is not None

    def change(self, now: float) -> None:
        """A change arrived at ``now``."""
        if self._first is None:
            self._first = now
            quiet_since = max(self._last_flush, self._last_change)
            self._leading = now - quiet_since > self.min
        else:
            self._leading = False  # a second change before the first went out: it is a burst
        self._last = self._last_change = now

    def _tokens_now(self, now: float) -> float:
        if self.spacing <= 0:
            return float(self.burst)
        return min(float(self.burst), self._tokens + max(0.0, now - self._tokens_at) / self.spacing)

    def deadline(self) -> float | None:
        """When the pending changes are due, or None when nothing is pending."""
        if self._first is None or self._last is None:
            return None
        quiet = self._first if self._leading else min(self._last + self.min, self._first + self.max)
        if self._tokens_at == float("-inf") or self.spacing <= 0:
            return quiet
        # The earliest moment the bucket holds one whole token again.
        missing = max(0.0, 1.0 - self._tokens)
        return max(quiet, self._tokens_at + missing * self.spacing)

    def due(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline - 1e-9

    def flushed(self, now: float, reloaded: bool = True) -> None:
        """The pending changes were acted on at ``now``; a reload spends one token."""
        if reloaded:
            self._tokens = (
                max(0.0, self._tokens_now(now) - 1.0) if self._tokens_at != float("-inf") else float(self.burst) - 1.0
            )
            self._tokens_at = now
        self._first = self._last = None
        self._last_flush = now
