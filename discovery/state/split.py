"""Traffic split by tag (service meta ``disco-split``): its grammar, and per-instance weights.  Pure.

``disco-split`` is ``TAG=PERCENT[,TAG=PERCENT...]``, e.g. ``v2=5`` or ``v2=5,v3=20``: the
instances carrying each tag together receive that share of new requests, the other
instances (the *rest*) share what is left.  Percents are integers 0-100 that sum to
at most 100; each tag appears once; a tag has the characters of a Consul tag that an
HAProxy config could carry (it never reaches the config: only the weights do).

Weights are computed from the counts on each side, so the shares hold whatever the
number of instances: 3 stable and 1 canary at ``v2=10`` give the canary 10 % of
requests.  Within a side, each instance's ``disco-weight`` (default 1) divides the
side's share.  An instance carrying several split tags belongs to the first one the
specification names.  A tag no instance carries: its share goes to the rest (with one
note).  Backups are left out (they serve only when nothing else is up).  The weights
are scaled so that the largest is 256, HAProxy's maximum, for the best precision; a
positive share never rounds to weight 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .model import Instance

MAX_WEIGHT = 256
_TAG = r"[A-Za-z0-9_.:/@+%-]{1,64}"
_PERCENT = r"(?:100|[1-9][0-9]|[0-9])"
_ENTRY = rf"{_TAG}={_PERCENT}"
GRAMMAR = re.compile(rf"{_ENTRY}(?:,{_ENTRY}){{0,15}}")
ALLOWED = "TAG=PERCENT[,TAG=PERCENT...], integers 0-100 summing to at most 100, each tag once"


@dataclass(frozen=True, order=True)
class Split:
    """A checked ``disco-split``: (tag, percent) pairs in the order given."""

    shares: tuple[tuple[str, int], ...]

    def __str__(self) -> str:
        return ",".join(f"{tag}={pct}" for tag, pct in self.shares)

    @property
    def rest(self) -> int:
        """The percent left for the instances carrying none of the tags."""
        return 100 - sum(pct for _, pct in self.shares)


def parse(value: str) -> Split | None:
    """The split ``value`` spells, or None when it is outside the grammar."""
    if not isinstance(value, str) or GRAMMAR.fullmatch(value) is None:
        return None
    shares = tuple((tag, int(pct)) for tag, pct in (item.split("=") for item in value.split(",")))
    tags = [tag for tag, _ in shares]
    if len(set(tags)) != len(tags) or sum(pct for _, pct in shares) > 100:
        return None
    return Split(shares)


def side(split: Split, inst: Instance) -> str:
    """The split tag ``inst`` counts for (the first one named that it carries), or "" for the rest."""
    return next((tag for tag, _ in split.shares if tag in inst.tags), "")


def apply(service: str, split: Split, instances: Sequence[Instance], notes: list[str]) -> tuple[Instance, ...]:
    """``instances`` with the weights that give each side its share (backups untouched)."""
    sides: dict[str, list[Instance]] = {}
    for inst in instances:
        if not inst.backup:
            sides.setdefault(side(split, inst), []).append(inst)
    share = dict(split.shares)
    share[""] = split.rest
    for tag, pct in split.shares:
        if tag not in sides and pct:
            notes.append(
                f"{service}: disco-split {split}: no instance carries tag {tag!r}; its {pct}% goes to the rest"
            )
            share[""] += pct
    present = {s: share[s] for s in sides}
    total = sum(present.values())
    if not sides:
        return tuple(instances)
    if total == 0:
        notes.append(f"{service}: disco-split {split} leaves no share to any instance routed; ignored")
        return tuple(instances)
    # Each instance's ideal share of requests, as a fraction: its side's share over the side's weights.
    ideal: dict[str, float] = {}
    for name, members in sides.items():
        base = sum(_base(i) for i in members)
        for inst in members:
            ideal[inst.name] = present[name] / total * _base(inst) / base if base else 0.0
    top = max(ideal.values())
    if top <= 0:
        notes.append(f"{service}: disco-split {split}: every instance with a share has disco-weight 0; ignored")
        return tuple(instances)
    weights = {n: (max(1, round(MAX_WEIGHT * v / top)) if v > 0 else 0) for n, v in ideal.items()}
    return tuple(replace(i, weight=weights[i.name]) if i.name in weights else i for i in instances)


def _base(inst: Instance) -> int:
    return 1 if inst.weight is None else inst.weight
