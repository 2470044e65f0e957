"""The sanity gate: when to believe a change that takes away most of a service.  Pure.

consul-template renders empty or near-empty files during a Consul leader
election or after a restart (its issues #1131, #1713), and fabio drops every
route when its agent is unreachable (#861).  A change that removes at least
``share`` of a service's instances at once (default 1.0: all of them) is
*suspect*:

- while Consul has no leader (or cannot say), it is held until Consul is
  healthy again or it has persisted for ``grace``;
- when Consul is healthy and the service really has no instance left,
  ``when_empty`` decides: ``keep`` the last known servers for ``grace`` (their
  HAProxy health checks still take dead ones out), or go ``empty`` at once (the
  backend answers 503).

A held change is never lost: the newest proposal replaces the held one, and a
proposal that is no longer suspect (instances came back) ends the hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from .model import Service

WhenEmpty = Literal["keep", "empty"]


@dataclass(frozen=True)
class GatePolicy:
    share: float = 1.0
    grace: float = 30.0
    when_empty: WhenEmpty = "keep"


@dataclass(frozen=True)
class Hold:
    """A suspect proposal kept back, and since when."""

    proposed: Service
    since: float
    reason: str
    #: The service left the catalog: letting the hold through drops the service, not just its instances.
    remove: bool = False


def removed(previous: Service, proposed: Service) -> int:
    before = {i.name for i in previous.instances}
    return len(before - {i.name for i in proposed.instances})


def suspect(previous: Service | None, proposed: Service, share: float) -> bool:
    """Does ``proposed`` take away at least ``share`` of ``previous``'s instances?"""
    if previous is None or not previous.instances:
        return False
    return removed(previous, proposed) >= max(1, math.ceil(share * len(previous.instances) - 1e-9))


def decide(policy: GatePolicy, previous: Service | None, proposed: Service, healthy: bool) -> str | None:
    """None: apply ``proposed`` now.  Otherwise the reason to hold it."""
    if not suspect(previous, proposed, policy.share):
        return None
    if not healthy:
        return "Consul has no leader"
    if not proposed.instances and policy.when_empty == "keep":
        return "every instance is gone"
    return None


def release(policy: GatePolicy, hold: Hold, now: float, healthy: bool) -> bool:
    """Should a held proposal be applied now?"""
    if now - hold.since >= policy.grace:
        return True
    return (
        healthy
        and hold.reason == "Consul has no leader"
        and not (not hold.proposed.instances and policy.when_empty == "keep")
    )
