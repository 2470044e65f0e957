"""Follow operator overrides in Consul KV: one blocking query on the prefix (``?recurse``).

Every answer is checked whole (:func:`discovery.state.overrides.read`): the documents that pass
are handed to the pipeline's inbox as one :class:`OverridesUpdate`, the same way the service
watches hand on theirs; a malformed document is one log line naming its key (again only when
its reason changes), and the others keep applying.  The loop is :class:`~discovery.consul.watch.Follow`:
Consul's blocking-query rules, backoff, a refused token reported once.  Reading needs
``key:read`` on the prefix only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..state.overrides import Overrides, read
from .watch import Follow, Report, WatchTiming, no_report

log = logging.getLogger(__name__)
KV = "/v1/kv"


class KVReader(Protocol):
    def kv_prefix(self, prefix: str, *, index: int, wait: float) -> tuple[int, list[tuple[str, bytes]]]: ...


@dataclass(frozen=True)
class OverridesUpdate:
    """The overrides now in force (and the malformed documents), as the pipeline receives them."""

    overrides: Overrides
    index: int
    seen_at: float = 0.0


class OverridesWatch:
    """``kv(prefix)``, followed until stopped; changed sets of documents go to ``post``."""

    def __init__(
        self,
        kv: KVReader,
        prefix: str,
        post: Callable[[OverridesUpdate], None],
        stop: threading.Event,
        *,
        timing: WatchTiming | None = None,
        clock: Callable[[], float] = time.monotonic,
        report: Report = no_report,
    ) -> None:
        self.prefix = prefix
        self.post = post
        self.clock = clock
        self._last: Overrides | None = None
        self._logged: dict[str, str] = {}

        def fetch(index: int, wait: float) -> tuple[int, Any]:
            return kv.kv_prefix(prefix, index=index, wait=wait)

        self.follow = Follow(
            f"kv({prefix}|recurse)", fetch, self._answer, stop, timing or WatchTiming(), clock, KV, report
        )

    def _answer(self, index: int, entries: Any) -> bool:
        overrides = read(self.prefix, entries)
        malformed = dict(overrides.malformed)
        for key, reason in overrides.malformed:
            if self._logged.get(key) != reason:
                log.error("override %s ignored: %s", key, reason)
        self._logged = malformed
        if overrides == self._last:
            return False
        self._last = overrides
        log.info(
            "%s: %d overrides in force at index %d%s",
            self.follow.identity,
            len(overrides.items),
            index,
            f", {len(malformed)} malformed" if malformed else "",
        )
        self.post(OverridesUpdate(overrides, index, self.clock()))
        return True

    def run(self) -> None:
        self.follow.run()
