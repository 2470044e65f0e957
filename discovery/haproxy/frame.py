"""A rendered config as a frame with slots, so that one changed service costs one service.

With ``cached()`` (:mod:`~discovery.haproxy.render`) a changed service renders only its own
macro, but the template's loop still visits every service and joins every backend's text: at
2,500 services that loop was most of a render.  A *frame* is the template rendered once with
each ``cached(macro, ...)`` call left as a numbered marker: the text between the markers (the
literal pieces) and, for each marker, the macro and its arguments (the *slot*).  While the
frame holds, a render is: the slots of the services that changed rendered again, and the
pieces and fragments joined.

The frame may depend on nothing that a slot's service carries, or it would go stale when a
service changes: it is rendered with *name-only* services (each ``services`` entry and each
``service[NAME]`` is ``{"name": NAME}``), so the text around the slots can read a service's
name and nothing else (a template that reads more outside ``cached()`` fails that render, and
is rendered whole, as before).  A frame is built again whenever the service names, their order,
the values, the environment or the routing table change, and every frame is checked twice: against
a real render, and against a real render whose ``cached()`` calls return :func:`probe` texts (a
filter on ``cached()``'s text, such as ``indent``, may leave an empty backend's text alone but
never a probe's): a template that does anything to ``cached()``'s text but print it as it is is
rendered whole from then on.  The result is byte for byte a full
render's (tests/unit/test_render_incremental.py).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jinja2

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_keys, dict_values

_MARK = "\x00disco-slot-{}\x01"
_MARKS = re.compile("\x00disco-slot-(\\d+)\x01")


class Rendered(str):
    """A config text filled from a frame: its first ``prefix`` and last ``suffix`` characters are
    those of the frame's fill before it (``serial`` - 1); the planner reads only the rest
    (:mod:`~discovery.haproxy.planner`)."""

    frame: Frame
    serial: int
    prefix: int
    suffix: int

    def follows(self, other: Rendered) -> bool:
        """Whether this text is the fill right after ``other``, from the same frame."""
        return self.frame is other.frame and self.serial == other.serial + 1


class LazyContext(dict[str, Any]):
    """A service as the template sees it (``Service.as_context()``), built when something reads more
    than its name: the template's loop reads the names, and an unchanged service's ``cached()`` text
    is kept, so most services' contexts are never built, and none is kept (50,000 instances' are 20 MB)."""

    def __init__(self, service: Any) -> None:
        super().__init__(name=service.name)
        self.disco_service = service
        self._built = False

    def _build(self) -> None:
        if not self._built:
            self._built = True
            self.update(self.disco_service.as_context())

    def __missing__(self, key: str) -> Any:
        self._build()
        return dict.__getitem__(self, key)  # KeyError when the context has no such key either

    # Every other way of reading a dict sees the whole context.
    def __iter__(self) -> Iterator[str]:
        self._build()
        return super().__iter__()

    def __len__(self) -> int:
        self._build()
        return super().__len__()

    def __contains__(self, key: object) -> bool:
        self._build()
        return super().__contains__(key)

    def __eq__(self, other: object) -> bool:
        self._build()
        if isinstance(other, LazyContext):
            other._build()
        return super().__eq__(other)

    __hash__ = None

    def __repr__(self) -> str:
        self._build()
        return super().__repr__()

    def get(self, key: str, default: Any = None) -> Any:
        self._build()
        return super().get(key, default)

    def keys(self) -> dict_keys[str, Any]:
        self._build()
        return super().keys()

    def values(self) -> dict_values[str, Any]:
        self._build()
        return super().values()

    def items(self) -> dict_items[str, Any]:
        self._build()
        return super().items()

    def copy(self) -> dict[str, Any]:
        self._build()
        return dict(super().items())


class ReadBeyondName(Exception):
    """The template read more of a service than its name outside ``cached()``.  Not a LookupError:
    Jinja would take that for an undefined value (``| default``, ``is defined``) and go on."""


class NameOnly(dict[str, Any]):
    """A service as the frame sees it: its name only.  Any other read (a key, ``in``, ``.get``, a
    loop over it, its length) raises :class:`ReadBeyondName`, so the frame is not used."""

    def __missing__(self, key: str) -> Any:
        raise ReadBeyondName(key)

    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise ReadBeyondName("a service's keys")

    get = keys = items = values = __contains__ = __iter__ = __len__ = _refuse

    def __bool__(self) -> bool:
        return True  # a service is never empty


def probe(n: int) -> str:
    """A stand-in for the text of ``cached()`` call ``n``: newlines, edge whitespace and both cases, so that a
    filter on ``cached()``'s text (indent, trim, upper...) changes it whatever the services hold."""
    return f"\n \x02probe-{n}\nA b\n \n"


@dataclass(frozen=True)
class Ref:
    """A slot's argument that is a service (by its position in the state's services)."""

    index: int


@dataclass(frozen=True)
class Slot:
    macro: Any
    args: tuple[Any, ...]  # Ref for a service, the value itself otherwise


class Recorder:
    """``cached`` while a frame is rendered: records each call as a slot, returns its marker."""

    def __init__(self, positions: dict[str, int]) -> None:
        self.positions = positions
        self.slots: list[Slot] = []

    def __call__(self, macro: Any, *args: Any) -> str:
        spec = tuple(Ref(self.positions[a["name"]]) if isinstance(a, NameOnly) else a for a in args)
        self.slots.append(Slot(macro, spec))
        return _MARK.format(len(self.slots) - 1)


def record(render: Callable[[list[dict[str, Any]], Recorder], str], names: tuple[str, ...]) -> Frame | None:
    """The frame of a template for services of these ``names``: ``render(services, cached)`` renders it
    with ``services`` as its services and ``cached`` as its ``cached``; None when the template reads
    more of a service than its name outside ``cached()`` (or when two services share a name)."""
    positions = {name: n for n, name in enumerate(names)}
    if len(positions) < len(names):
        return None
    recorder = Recorder(positions)
    try:
        text = render([NameOnly(name=name) for name in names], recorder)
    except (jinja2.TemplateError, ReadBeyondName):
        return None
    return Frame.cut(text, names, recorder.slots)


@dataclass
class Frame:
    """The pieces and slots of one frame; ``parts`` interleaves pieces and the slots' current text."""

    names: tuple[str, ...]
    slots: tuple[Slot, ...]
    parts: list[str]
    #: service position -> the slots that take it
    by_service: dict[int, tuple[int, ...]]
    #: the services the parts were last filled from
    services: tuple[Any, ...]
    #: how many times it was filled
    serial: int = 0

    @classmethod
    def cut(cls, text: str, names: tuple[str, ...], slots: Sequence[Slot]) -> Frame | None:
        """The frame of ``text`` (rendered with a :class:`Recorder`); None when the markers did not
        come out once each and in order (something was done to ``cached()``'s text)."""
        pieces = _MARKS.split(text)
        numbers = pieces[1::2]
        if numbers != [str(n) for n in range(len(slots))]:
            return None
        by_service: dict[int, list[int]] = {}
        for n, slot in enumerate(slots):
            for arg in slot.args:
                if isinstance(arg, Ref):
                    by_service.setdefault(arg.index, []).append(n)
        parts = [p if i % 2 == 0 else "" for i, p in enumerate(pieces)]
        return cls(names, tuple(slots), parts, {k: tuple(v) for k, v in by_service.items()}, ())

    def holds_probes(self, render: Callable[[Callable[..., str]], str]) -> bool:
        """Whether a real render, ``render(cached)`` with each ``cached()`` call n answering :func:`probe` (n), is
        this frame with those probes in its slots (nothing filled, nothing changed)."""
        calls = itertools.count()
        probed = render(lambda macro, *args: probe(next(calls)))
        return probed == "".join(p if i % 2 == 0 else probe(i // 2) for i, p in enumerate(self.parts))

    def fill(self, services: tuple[Any, ...], render: Callable[[Slot, tuple[Any, ...]], str]) -> Rendered:
        """The text for ``services`` (same names, same order as the frame's): the slots of every
        service that is not the very object the parts were last filled from are rendered again
        with ``render(slot, services)``."""
        if self.services:
            changed = [i for i, (new, old) in enumerate(zip(services, self.services, strict=True)) if new is not old]
            slots = sorted(n for i in changed for n in self.by_service.get(i, ()))
        else:
            slots = list(range(len(self.slots)))  # the first fill: every slot, those that take no service too
        for n in slots:
            self.parts[2 * n + 1] = render(self.slots[n], services)
        self.services = services
        text = Rendered("".join(self.parts))
        text.frame, text.serial = self, self.serial
        self.serial += 1
        if slots:
            text.prefix = sum(map(len, self.parts[: 2 * slots[0] + 1]))
            text.suffix = sum(map(len, self.parts[2 * slots[-1] + 2 :]))
        else:
            text.prefix, text.suffix = len(text), 0
        return text
