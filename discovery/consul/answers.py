"""Which answers of a blocking query to read, and the index to ask with next: the one rule both loops use
(:class:`~discovery.consul.watch.Follow` on a thread, :class:`~discovery.consul.service_loop.ServiceFollow`
on the event loop).  Pure: no I/O, no clock.

Consul's rules (and consul-template's ``watch/view.go``): a return at the index already answered is
the wait running out with no change, and is skipped; an index that goes backwards (snapshot restore,
new cluster) starts again from 0, and the answer to that is read whatever its index; an index below
1 is taken as 1, or the next query would return at once, forever. One rule of disco's own: the first
answer after a failed request is read whatever its index, since a Consul restored or rebuilt may
come back at the index last seen with other content (a failover datacenter's server restarted empty
did).
"""

from __future__ import annotations


def next_index(previous: int, received: int) -> int:
    """The index for the next blocking query, per Consul's documented rules."""
    if received < previous:
        return 0  # went backwards (snapshot restore, new cluster): start again from scratch
    return max(received, 1)  # 0 would make the next query return at once, forever


class AnswerRule:
    """One blocking query's state: ``index`` to ask with; :meth:`failed` after a request fails;
    :meth:`take` for each answer."""

    def __init__(self) -> None:
        self.index = 0
        self._answered = False
        self._failed = False

    def failed(self) -> None:
        """A request failed: the next answer is read whatever its index."""
        self._failed = True

    def take(self, received: int) -> bool:
        """Whether to read an answer at index ``received`` (False: the wait ran out with no change);
        moves :attr:`index` for the next query."""
        failed, self._failed = self._failed, False
        if received == self.index and self.index and self._answered and not failed:
            return False  # (an index of 0 is a read from scratch: always read)
        self.index = next_index(self.index, received)
        self._answered = True
        return True
