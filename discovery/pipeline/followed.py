"""The services the pipeline follows, and the view of each it has admitted.

Without ``--discover`` the set is the ``--service`` names, fixed at start.  With it, the
catalog watch says which services are followed (:class:`~discovery.consul.discover.Listed`)
and which leave (:class:`~discovery.consul.discover.Gone`).  The pipeline renders once the
catalog list has been read and every followed service has been read once; with
``--discover`` and no ``--service``, an empty catalog is complete: a config with no backend
(HAProxy answers 503).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..consul.discover import NO_ROUTE_TAG, Gone, Listed
from ..state.convert import STATUSES
from ..state.model import DesiredState, Service
from .events import ChangeSeen, Counted, Event


class Followed:
    """``views`` is shared with the gatekeeper, which admits new views into it in place."""

    def __init__(self, explicit: Sequence[str], discover: bool) -> None:
        self.explicit = tuple(explicit)
        self.discover = discover
        self.views: dict[str, Service | None] = dict.fromkeys(self.explicit)
        self._listed = not discover
        self._complete = False  # once every view is there it stays so, until new services are listed
        # Services not seen read yet, checked from the end and dropped once read: the pipeline asks after
        # every message, and scanning every view each time made a first pass quadratic (2,500 services).
        self._awaited: list[str] = list(self.explicit)

    @property
    def complete(self) -> bool:
        if not self._complete:
            awaited = self._awaited
            while awaited and self.views.get(awaited[-1], True) is not None:  # read, or no longer followed
                awaited.pop()
            self._complete = self._listed and not awaited
        return self._complete

    def apply(self, message: Listed | Gone, leave: Callable[[str, bool], bool], emit: Callable[[Event], None]) -> bool:
        """Take a change of the set; return whether a pass is due.

        :class:`Listed`: newly followed services are awaited (their first read follows; an empty
        catalog is complete).  :class:`Gone`: the service's instance counts go to zero, and the
        gate's ``leave(name, gated)`` drops its view, at once (its route tags were taken off) or
        after a hold (its instances went)
        (:meth:`~discovery.pipeline.gatekeeper.Gatekeeper.leave`)."""
        if isinstance(message, Listed):
            self._listed = True
            for name in message.services:
                if name not in self.views:
                    self.views[name] = None
                    self._awaited.append(name)
                    self._complete = False
            return True
        if message.service not in self.views:
            return False
        emit(Counted(message.service, tuple((status, 0) for status in STATUSES), ()))
        emit(ChangeSeen(message.service, 0, message.seen_at))
        return leave(message.service, message.reason != NO_ROUTE_TAG)

    def state(self) -> DesiredState:
        """``--service`` names first, in their order, then the discovered services by name (so a
        restart renders the same file whatever order they appeared in)."""
        others = sorted(set(self.views) - set(self.explicit)) if self.discover else []
        services = map(self.views.get, (*self.explicit, *others) if others else self.explicit)
        return DesiredState(tuple(filter(None, services)), frozenset(others))
