"""What connections reset with no answer mean: the agent's connection limit, or an outage (the pure rule)."""

from __future__ import annotations

import pytest

from discovery.consul.resets import Evidence, Outcome, Probe, judge

ANSWERED_200 = Probe(Outcome.ANSWERED, 200)


def verdict(probe: Probe, held: int = 0, wanted: int = 20) -> bool:
    return judge(Evidence(probe, held, wanted)).limit


def test_an_agent_that_does_not_answer_a_fresh_connection_is_an_outage():
    """Restarting: connection refused, or no answer in time; whatever our long polls look like."""
    assert not verdict(Probe(Outcome.DOWN, detail="connection refused"), held=0)
    assert not verdict(Probe(Outcome.DOWN, detail="timed out"), held=20)


def test_a_fresh_connection_reset_too_is_the_limit_only_while_the_agent_holds_long_polls_of_ours():
    # Past the limit: the agent keeps the connections it has and resets new ones.
    assert verdict(Probe(Outcome.RESET), held=10)
    # A proxy in front of an agent that is down accepts and closes everything: nothing of ours is held.
    assert not verdict(Probe(Outcome.RESET), held=0)


def test_a_429_is_the_agent_saying_it_is_the_limit():
    assert verdict(Probe(Outcome.REFUSED), held=0)


def test_an_agent_that_answers_far_below_its_limit_is_not_the_limit():
    """An agent just back from a restart answers; the resets were passing."""
    assert not verdict(ANSWERED_200, held=0)
    assert not verdict(ANSWERED_200, held=20)


@pytest.mark.parametrize("held, limit", [(180, 200), (181, 200), (24, 40)])
def test_long_polls_held_at_the_limit_less_headroom_are_the_limit(held, limit):
    assert verdict(Probe(Outcome.ANSWERED, limit), held=held, wanted=held)


def test_an_agent_back_with_a_lower_limit_than_the_long_polls_need_is_the_limit():
    result = judge(Evidence(Probe(Outcome.ANSWERED, 40), held=0, wanted=30))
    assert result.limit and "now allows 40 connections per client, 24 after headroom: 30 do not fit" in result.reason


@pytest.mark.parametrize("limit", [None, 0])
def test_an_unknown_or_absent_limit_shows_no_limit(limit):
    assert not verdict(Probe(Outcome.ANSWERED, limit), held=5000, wanted=5000)
