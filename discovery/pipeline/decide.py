"""Decide what it takes to make HAProxy run a rendered config.  Pure: no I/O, no clock.

The inputs are everything the decision depends on: the config HAProxy is known
to run (``running``), whether HAProxy is known to run exactly that (``in_sync``:
false after a failed or partial update, or before the first read-back), the
candidate text, and whether a runtime API is at hand.  The answer is one of:

- ``NOTHING``: HAProxy already runs the candidate;
- ``LIVE``: runtime API operations (possibly with servers to drain), no reload;
- ``RELOAD``: a validated file swap and a reload, with the reason.

``disco watch`` executes it (:mod:`discovery.pipeline.execute`); ``plan`` and
``explain`` call the same function, so what they say is what ``watch`` does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..haproxy.plan import Held, Op, ParsedConfig
from ..haproxy.planner import Planner


class Action(enum.Enum):
    NOTHING = "nothing"
    LIVE = "live"
    RELOAD = "reload"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    ops: tuple[Op, ...] = ()
    #: The candidate's parse, when the planner made one (the live path reads it back against HAProxy).
    parsed: ParsedConfig | None = None

    def describe(self) -> str:
        if self.action is Action.LIVE:
            return f"{len(self.ops)} runtime operations ({self.reason})"
        return f"{self.action.value} ({self.reason})"


def decide(
    running: str | None,
    candidate: str,
    *,
    in_sync: bool,
    live_capable: bool,
    planner: Planner | None = None,
    held: Held | None = None,
) -> Decision:
    """What to do to go from ``running`` to ``candidate``; ``held``: the lines of slots HAProxy
    still drains (a server that comes back reuses its slot only if the slot can carry it)."""
    if running is None:
        return Decision(Action.RELOAD, "no running config")
    if not in_sync:
        return Decision(Action.RELOAD, "HAProxy may differ from the file after a failed or partial update")
    if running == candidate:
        return Decision(Action.NOTHING, "HAProxy runs this config")
    if not live_capable:
        return Decision(Action.RELOAD, "config changed (no runtime API socket)")
    planner = planner or Planner()
    plan = planner.plan(running, candidate, held)
    if not plan.live:
        return Decision(Action.RELOAD, plan.reload_reason or "config changed")
    return Decision(Action.LIVE, "only servers changed", plan.ops, planner.parsed(candidate))
