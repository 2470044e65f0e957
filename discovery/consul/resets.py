"""What connections reset with no answer mean: the agent's connection limit, or an outage.  Pure: no I/O.

Consul 1.8.7 resets a connection past its per-client limit with no HTTP answer (newer versions
answer 429).  So does a client agent while it stops and starts, and so does any TCP proxy in front
of an agent that is down (it accepts, finds nothing behind it, and closes): a reset alone does not
say which.  The limit calls for a clear error (retrying would leave services unwatched forever);
an outage calls for retrying with backoff, as any other.  The evidence that tells them apart, taken
when resets keep coming (:class:`~discovery.consul.service_loop.ServiceLoop`):

- a **probe**: ``/v1/agent/self`` asked on a fresh connection of its own
  (:meth:`~discovery.consul.aio_client.AsyncConsul.probe`): answered (with the agent's limit, read
  again now), reset with no answer, refused with 429, or no answer at all;
- the long polls of ours the agent **holds** open (in flight for at least :data:`HELD_FOR`
  seconds): an agent that is down or restarting holds none;
- how many long polls the watcher **wants** (one per service).

The rule (:func:`judge`):

1. The probe got no answer (connection refused, timed out): the agent is down: an outage.
2. The probe was refused with 429: the agent says so itself: the limit.
3. The probe was reset too: the limit if the agent still holds long polls of ours (it serves our
   address, and refuses only new connections); an outage if it holds none (nothing of ours is
   served: an agent restarting, or down behind a proxy).
4. The probe was answered: the agent is up and took a fresh connection.  The limit if the long
   polls wanted no longer fit under the limit it reports now (an agent restarted with a lower one),
   or those it holds are at the limit after headroom (:func:`~discovery.consul.fit.polls_allowed`);
   otherwise the resets were passing (an agent just back): an outage, retried.

A wrong "outage" costs a retry and is judged again at the next reset; a wrong "limit" would stop a
watcher that could have gone on, so the limit needs positive evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .fit import polls_allowed

#: A long poll in flight at least this long is held by the agent (a reset or refused one fails at once).
HELD_FOR = 1.0


class Outcome(Enum):
    """How the agent took a probe on a fresh connection."""

    ANSWERED = "answered"  # an HTTP answer (other than 429)
    REFUSED = "refused"  # 429: too many connections from this address
    RESET = "reset"  # accepted, then closed with no answer
    DOWN = "down"  # refused at connect, timed out, or otherwise no answer


@dataclass(frozen=True)
class Probe:
    """A probe's outcome; ``limit`` is the agent's ``HTTPMaxConnsPerClient`` when it answered with it
    (0: no limit), ``detail`` what was seen (for the log)."""

    outcome: Outcome
    limit: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class Evidence:
    probe: Probe
    held: int  # long polls of ours the agent has held open for at least HELD_FOR
    wanted: int  # long polls the watcher needs (one per service)


@dataclass(frozen=True)
class Verdict:
    limit: bool  # True: the agent's connection limit; False: an outage, to retry with backoff
    reason: str


def judge(evidence: Evidence) -> Verdict:
    """The limit or an outage, from ``evidence`` (see the module's rule)."""
    probe, held, wanted = evidence.probe, evidence.held, evidence.wanted
    polls = f"{held} long poll{'' if held == 1 else 's'} of ours held open"
    if probe.outcome is Outcome.DOWN:
        return Verdict(False, f"the agent does not answer a fresh connection ({probe.detail or 'no answer'})")
    if probe.outcome is Outcome.REFUSED:
        return Verdict(True, f"the agent refuses a fresh connection with 429 ({polls})")
    if probe.outcome is Outcome.RESET:
        if held:
            return Verdict(True, f"the agent resets a fresh connection too, with {polls}")
        return Verdict(False, "the agent resets a fresh connection too and holds no long poll of ours")
    limit = probe.limit
    if not limit:  # unknown (None) or no limit (0): nothing shows a limit
        known = "no connection limit" if limit == 0 else "an unknown connection limit"
        return Verdict(False, f"the agent answers a fresh connection, with {known}")
    allowed = polls_allowed(limit)
    if wanted > allowed:
        return Verdict(
            True, f"the agent now allows {limit} connections per client, {allowed} after headroom: {wanted} do not fit"
        )
    if held >= allowed:
        return Verdict(True, f"{polls}, at the agent's {limit} connections per client less headroom")
    return Verdict(False, f"the agent answers a fresh connection, {polls}, under its {limit} connections per client")
