"""How old a ``?stale`` (or ``?cached``) answer may be before it is asked again."""

from __future__ import annotations

#: consul-template's ``max_stale`` in its examples: a stale answer older than this is asked again.
DEFAULT_MAX_STALE = 2.0


def too_stale(last_contact_ms: int | None, max_stale: float) -> bool:
    """Whether a ``?stale`` answer is too old to use: its server last heard from the leader more
    than ``max_stale`` seconds ago.  No ``X-Consul-LastContact`` (a leader's own answer, or an
    older Consul) is never too old."""
    return last_contact_ms is not None and last_contact_ms > max_stale * 1000
