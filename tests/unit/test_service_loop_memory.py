"""A long poll does not hold its last answer while it waits for the next: 2,500 services' last
answers are the whole catalog decoded (150 MB at 50,000 instances)."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from discovery.consul.aio_client import Reply
from discovery.consul.service_loop import ServiceFollow
from discovery.consul.watch import ServiceView, WatchTiming


class Entries(list):
    """A decoded answer that a weak reference can watch."""


class End(Exception):
    pass


@pytest.mark.parametrize("second_index", [3, 4])  # the next answer: unchanged, or a change
def test_the_last_answer_is_not_kept_through_the_next_long_poll(second_index):
    answers: list[weakref.ref] = []
    alive_while_waiting: list[bool] = []

    async def fetch(index: int, wait: float) -> Reply:
        if answers:
            gc.collect()
            alive_while_waiting.append(answers[-1]() is not None)
        if len(answers) == 3:
            raise End()
        entries = Entries([{"Node": {"Node": "n1"}, "Service": {"ID": "a", "Address": "10.0.0.1", "Port": 80}}])
        answers.append(weakref.ref(entries))
        return Reply(3 if not answers[:-1] else second_index, entries)

    follow = ServiceFollow(ServiceView("web", lambda _u: None), fetch, timing=WatchTiming(min_interval=0))
    with pytest.raises(End):
        asyncio.run(follow.run())
    assert alive_while_waiting == [False, False, False]
