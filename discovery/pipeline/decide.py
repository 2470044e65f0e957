"""Decide what it takes to make HAProxy run a rendered config.  Pure: no I/O, no clock.

The inputs are everything the decision depends on: the config HAProxy is known
to run (``running``), whether HAProxy is known to run exactly that (``in_sync``:
false after a failed or partial update, or before the first read-back), the
candidate text, and whether a runtime API is at hand.  The answer is one of:

- ``NOTHING``: HAProxy already runs the candidate;
- ``LIVE``: runtime API operations (possibly with servers to drain), no reload;
- ``RELOAD``: a validated file swap and a reload, with the reason.

A change of more runtime operations than a reload would take time for (:func:`live_limit`: a
watcher's first pass on a HAProxy started with no servers, a large delta) is a reload too.

``disco watch`` executes it (:mod:`discovery.pipeline.execute`); ``plan`` and
``explain`` call the same function, so what they say is what ``watch`` does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..haproxy.plan import Held, Op, ParsedConfig, too_many
from ..haproxy.planner import Planner

#: What the runtime API and a reload cost, measured on HAProxy 2.6 here (docs/benchmarks.md): `add
#: server` runs at about 6,300 per second on one socket session (0.16 ms an operation, the
#: read-back included); ``haproxy -c`` and a reload take about 50 ms plus 30 us per server
#: (0.10 + 0.20 s at 10,000 servers, 0.47 + 1.09 s at 50,000).
LIVE_OP_SECONDS = 0.00016
RELOAD_SECONDS, RELOAD_SECONDS_PER_SERVER = 0.05, 0.00003


def live_limit(servers: int) -> int:
    """The most runtime operations a live change of a config of ``servers`` servers may take: beyond
    that a reload is quicker (312 with no server, 2,187 at 10,000 servers, 9,687 at 50,000)."""
    return int((RELOAD_SECONDS + servers * RELOAD_SECONDS_PER_SERVER) / LIVE_OP_SECONDS)


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
    plan = planner.plan(running, candidate, held, live_limit)  # stops once more servers than that change
    if not plan.live:
        return Decision(Action.RELOAD, plan.reload_reason or "config changed")
    parsed = planner.parsed(candidate)
    if len(plan.ops) > live_limit(0) and parsed is not None:  # (counting the servers costs a look at each backend)
        limit = live_limit(sum(len(section.servers) for section in parsed.sections))
        if len(plan.ops) > limit:  # (a server whose options changed may take several operations)
            return Decision(Action.RELOAD, too_many(limit))
    return Decision(Action.LIVE, "only servers changed", plan.ops, parsed)
