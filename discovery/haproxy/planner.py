"""Plans from one config text to the next, at the cost of what changed between them.

:func:`~discovery.haproxy.plan.parse` cuts a config into chunks (before each ``backend``) and
parses each; the planner keeps the chunks of the last two configs with their sections, so a
chunk seen before is not parsed again.  That still reads the whole text (to cut it, and to find
each chunk among the known ones: 2,500 backends are 2.5 MB).  A text the renderer filled from
the same frame as the last one (:class:`~discovery.haproxy.frame.Rendered`) says how much of it,
at the start and at the end, is the last text unchanged: only the chunks that overlap the rest
are cut and parsed again, the others are the last parse's, and the config's parse is put
together from them (every section of an unchanged chunk is the very same object, so
:func:`~discovery.haproxy.plan.diff` skips it).  The result is what a fresh parse gives
(tests/unit/test_render_incremental.py holds one against the other).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from .frame import Rendered
from .plan import Held, ParsedConfig, Plan, Section, diff, parse_chunk, split


@dataclass(frozen=True)
class _Memo:
    """One config's parse, chunk by chunk (``parsed`` None: the planner cannot read it)."""

    text: str
    parsed: ParsedConfig | None
    chunks: tuple[str, ...] = ()
    starts: tuple[int, ...] = ()  # where each chunk starts in ``text``
    sections: tuple[tuple[Section, ...], ...] = ()
    backends: dict[str, int] = field(default_factory=dict)  # backend -> the chunk that holds it


def _memo(
    text: str,
    chunks: list[str],
    sections: list[tuple[Section, ...]],
    starts: list[int] | None = None,
    backends: dict[str, int] | None = None,
) -> _Memo:
    """The memo of a parse; ``starts`` and ``backends`` (backend -> its chunk) are computed unless given."""
    if starts is None:
        starts, at = [], 0
        for chunk in chunks:
            starts.append(at)
            at += len(chunk) + 1  # and the "\n" before the next "backend "
    if backends is None:
        backends = {}
        for n, chunk_sections in enumerate(sections):
            if not _add_backends(backends, chunk_sections, n):
                return _Memo(text, None)
    parsed = ParsedConfig(tuple(itertools.chain.from_iterable(sections)))
    return _Memo(text, parsed, tuple(chunks), tuple(starts), tuple(sections), backends)


def _add_backends(backends: dict[str, int], sections: tuple[Section, ...], chunk: int) -> bool:
    """Record the backends of one chunk; False for a name already taken (HAProxy refuses two
    backends of one name: we cannot plan it)."""
    for section in sections:
        if section.kind == "backend":
            if section.name in backends:
                return False
            backends[section.name] = chunk
    return True


def _parse_all(text: str, known: _Memo | None) -> _Memo:
    """Every chunk of ``text``, the ones ``known`` has reused as they are."""
    reuse = dict(zip(known.chunks, known.sections, strict=True)) if known is not None else {}
    chunks = split(text)
    sections = []
    for chunk in chunks:
        parsed = reuse.get(chunk)
        if parsed is None:
            parsed = parse_chunk(chunk)
            if parsed is None:
                return _Memo(text, None)
        sections.append(parsed)
    return _memo(text, chunks, sections)


def _parse_changed(text: Rendered, last: _Memo) -> _Memo:
    """``text``, which is ``last.text`` but between ``text.prefix`` and its last ``text.suffix``
    characters: the chunks that overlap that span are cut and parsed again.  A chunk starts right
    after a newline, and a newline cannot be part of "backend ", so the unchanged text around the
    span holds the same chunk boundaries as before."""
    old = last.text
    end = len(old) - text.suffix  # the changed span is old[prefix:end], text[prefix:len(text) - suffix]
    lo = bisect.bisect_right(last.starts, text.prefix) - 1
    hi = bisect.bisect_left(last.starts, end + 1)  # the first chunk whose newline before it is unchanged
    shift = len(text) - len(old)
    start = last.starts[lo]
    stop = last.starts[hi] - 1 + shift if hi < len(last.starts) else len(text)
    first, *rest = text[start:stop].split("\nbackend ")
    if lo > 0 and not first.startswith("backend "):  # the chunk's own start changed: not a chunk any more
        return _parse_all(text, last)
    fresh = [first, *("backend " + chunk for chunk in rest)]
    sections = []
    for chunk in fresh:
        parsed = parse_chunk(chunk)
        if parsed is None:
            return _Memo(text, None)
        sections.append(parsed)
    # Backends: the last parse's, less those of the chunks cut again, then the fresh ones (numbered
    # again after them when the count of chunks changed).
    moved = len(fresh) - (hi - lo)
    if moved:
        backends = {name: n if n < lo else n + moved for name, n in last.backends.items() if not lo <= n < hi}
    else:  # the usual change (servers of one backend): no other backend moves
        backends = dict(last.backends)
        for section in itertools.chain.from_iterable(last.sections[lo:hi]):
            if section.kind == "backend":
                del backends[section.name]
    for n, parsed in enumerate(sections, lo):
        if not _add_backends(backends, parsed, n):
            return _Memo(text, None)
    starts, at = [], start
    for chunk in fresh:
        starts.append(at)
        at += len(chunk) + 1
    return _memo(
        text,
        [*last.chunks[:lo], *fresh, *last.chunks[hi:]],
        [*last.sections[:lo], *sections, *last.sections[hi:]],
        [*last.starts[:lo], *starts, *(s + shift for s in last.starts[hi:])],
        backends,
    )


class Planner:
    """Plans from one config text to the next, remembering the parses of the last two configs
    (the next plan starts from the config it planned to; a one-server change re-parses one
    section, and with a :class:`~discovery.haproxy.frame.Rendered` text reads only around it)."""

    def __init__(self) -> None:
        self._last: _Memo | None = None
        self._before: _Memo | None = None

    def parsed(self, text: str) -> ParsedConfig | None:
        """``parse(text)``, reusing the parse of either of the last two configs when it is the same text."""
        return self._memo(text).parsed

    def _memo(self, text: str) -> _Memo:
        for memo in (self._last, self._before):
            if memo is not None and (memo.text is text or memo.text == text):
                return memo
        memo = _parse(text, self._last)
        self._before, self._last = self._last, memo
        return memo

    def plan(
        self, old_text: str | None, new_text: str, held: Held | None = None, limit: Callable[[int], int] | None = None
    ) -> Plan:
        """:func:`~discovery.haproxy.plan.diff` of the two configs (``limit``: see there)."""
        if old_text is None:
            return Plan(reload_reason="no running config")
        old = self._memo(old_text)
        new = _parse(new_text, old)
        self._before, self._last = old, new
        return diff(old.parsed, new.parsed, held, limit)


def _parse(text: str, base: _Memo | None) -> _Memo:
    """``text``'s parse, from what ``base`` (a config parsed before) has in common with it."""
    if (
        isinstance(text, Rendered)
        and base is not None
        and base.parsed is not None
        and isinstance(base.text, Rendered)
        and text.follows(base.text)
    ):
        return _parse_changed(text, base)
    return _parse_all(text, base)
