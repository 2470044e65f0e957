"""Which checks changed between two answers of ``/v1/health/state/any``, without decoding them whole.

At 10,000 instances the answer is 3.6 MB of JSON; decoding it and digesting
every check took most of a change's CPU, for a change that touches one check.
Two answers are compared as text instead: the common prefix and suffix are
found by comparing slices (``memcmp``, about a millisecond per megabyte), the
differing middle is widened to whole check objects, and only those are decoded.

Element boundaries: every check is a JSON object whose first key is ``"Node"``
(Go encodes struct fields in order; compact or, as a dev agent answers,
indented).  The sequence ``"Node":`` cannot occur unescaped inside a JSON
string, and no nested object of a check has a ``Node`` key, so ``{`` followed
by white space and ``"Node":`` starts a check and nothing else.  Anything
unexpected (a region that does not decode into checks) returns None, and the
caller decodes both answers whole: slower, never wrong.
"""

from __future__ import annotations

import json
from typing import Any, cast

_KEY = '"Node":'
_BLOCK = 65536


def common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix (blockwise slice comparison, then bisection)."""
    n = min(len(a), len(b))
    lo = 0
    while lo < n:
        hi = min(n, lo + _BLOCK)
        if a[lo:hi] != b[lo:hi]:
            while hi - lo > 1:  # a[:lo] is common, a[:hi] is not
                mid = (lo + hi) // 2
                if a[lo:mid] == b[lo:mid]:
                    lo = mid
                else:
                    hi = mid
            return lo
        lo = hi
    return n


def common_suffix(a: str, b: str, limit: int) -> int:
    """Length of the longest common suffix, at most ``limit``."""
    la, lb = len(a), len(b)
    lo = 0
    while lo < limit:
        hi = min(limit, lo + _BLOCK)
        if a[la - hi : la - lo] != b[lb - hi : lb - lo]:
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if a[la - mid : la - lo] == b[lb - mid : lb - lo]:
                    lo = mid
                else:
                    hi = mid
            return lo
        lo = hi
    return limit


def _start_of_check_before(text: str, end: int) -> int | None:
    """Where the last check whose ``{ "Node":`` lies wholly before ``end`` starts."""
    pos = text.rfind(_KEY, 0, end)
    while pos != -1:
        brace = text.rfind("{", 0, pos)
        if brace != -1 and not text[brace + 1 : pos].strip():
            return brace
        pos = text.rfind(_KEY, 0, pos)
    return None


def _start_of_check_from(text: str, begin: int) -> int | None:
    """Where the first check that starts at or after ``begin`` starts."""
    pos = text.find(_KEY, begin)
    while pos != -1:
        brace = text.rfind("{", 0, pos)
        if brace >= begin and not text[brace + 1 : pos].strip():
            return brace
        pos = text.find(_KEY, pos + 1)
    return None


def _decode(chunk: str) -> list[dict[str, Any]] | None:
    body = chunk.strip().rstrip(",").strip()
    if not body:
        return []
    try:
        checks = json.loads(f"[{body}]")
    except ValueError:
        return None
    if not all(isinstance(c, dict) and "Node" in c for c in checks):
        return None
    return cast(list[dict[str, Any]], checks)


def changed_checks(old: str, new: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """The checks of the region where ``old`` and ``new`` differ: (as they were, as they are).

    Checks outside it are identical in both; inside it some may be too (a whole object is
    decoded even when one field changed).  None: the answers cannot be compared this way.
    """
    if old == new:
        return [], []
    prefix = common_prefix(old, new)
    suffix = common_suffix(old, new, min(len(old), len(new)) - prefix)
    start = _start_of_check_before(new, prefix)
    if start is None:  # the change is in the first check (or before any): from the opening bracket
        start = new.find("[")
        if start == -1 or start >= prefix or old.find("[") != start:
            return None
        start += 1
    shift = len(new) - len(old)
    end_new = _start_of_check_from(new, len(new) - suffix)
    if end_new is None:
        end_new = new.rfind("]")
        end_old = old.rfind("]")
        if end_new < len(new) - suffix or end_old < 0 or end_new - shift != end_old:
            return None
    else:
        end_old = end_new - shift
    before, after = _decode(old[start:end_old]), _decode(new[start:end_new])
    if before is None or after is None:
        return None
    return before, after
