"""The server options a config can express, declared once: how each is written on a ``server`` line,
whether HAProxy's runtime API can change it on a running slot (and with which command), and how
it is read back from HAProxy.  Pure: no I/O.

Everything that handles server options follows from :data:`OPTIONS`:

- render: the bundled template writes a server's options with :func:`render_words`
  (the ``server_options`` filter);
- plan: :func:`changed` names the options two lines differ in; one without a runtime
  command (``backup``, check settings, ``cookie``, anything the table does not know)
  makes the change a reload, and a draining slot is reused for a server that comes back
  only when :func:`reusable` says everything it carries but what the runtime API sets matches;
- live: :func:`command` is the runtime API command for one option of one slot;
- read-back: :func:`drift` compares what HAProxy reports (``show servers state`` and
  ``show stat``) with a line, option by option.

A server's *state* (ready, drain, maint) is not a line option: a slot the config lists must
be ready, which the read-back checks too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .runtime import ServerState as Running

#: Keywords of HAProxy's health check settings, with how many words follow each.
CHECK_WORDS = {
    "check": 0,
    "inter": 1,
    "fastinter": 1,
    "downinter": 1,
    "fall": 1,
    "rise": 1,
    "port": 1,
    "addr": 1,
    "check-ssl": 0,
    "check-send-proxy": 0,
    "observe": 1,
    "error-limit": 1,
    "on-error": 1,
}


@dataclass(frozen=True)
class Slot:
    """Everything one server line carries, by option (:func:`parse`)."""

    address: str
    port: int
    weight: int | None = None  # None: HAProxy's default, 1
    backup: bool = False
    maxconn: int = 0  # 0: no limit
    check: tuple[str, ...] = ()  # the check words, in order ("check", "inter", "1s", ...)
    cookie: str = ""
    other: tuple[str, ...] = ()  # words the table does not know, in order: never changed live


@dataclass(frozen=True)
class Option:
    """One server option: its words on a line, its runtime command, its read-back."""

    name: str
    words: Callable[[Slot], tuple[str, ...]]  # how a line spells it ("" when at its default)
    value: Callable[[Slot], object]  # what the line asks for, compared between two lines
    #: The runtime API command that sets it on a running slot, and the answers meaning success
    #: ("" : no answer); None: the runtime API cannot change it (a reload, or a fresh slot).
    live: Callable[[str, str, Slot], str] | None = None
    answers: tuple[str, ...] = ("",)
    #: ``add server`` accepts it (HAProxy 2.6 refuses ``cookie``).
    addable: bool = True
    #: What HAProxy reports for it, comparable to ``expected``; None: not read / not reported.
    read: Callable[[Running], object] | None = None
    expected: Callable[[Slot], object] | None = None


def _addr(slot: Slot) -> str:
    return f"[{slot.address}]:{slot.port}" if ":" in slot.address else f"{slot.address}:{slot.port}"


def _check_configured(state: int | None) -> bool | None:
    return None if state is None else bool(state & 0x02)  # CHK_ST_CONFIGURED


OPTIONS: tuple[Option, ...] = (
    Option(
        "address",
        words=lambda s: (),  # positional: ADDRESS:PORT after the name
        value=lambda s: (s.address, s.port),
        live=lambda b, n, s: f"set server {b}/{n} addr {s.address} port {s.port}",
        answers=("changed", "no need"),
        read=lambda r: (r.address, r.port),
        expected=lambda s: (s.address, s.port),
    ),
    Option(
        "check",
        words=lambda s: s.check,
        value=lambda s: s.check,
        read=lambda r: _check_configured(r.check_state),
        expected=lambda s: "check" in s.check,
    ),
    Option(
        "weight",
        words=lambda s: () if s.weight is None else ("weight", str(s.weight)),
        value=lambda s: 1 if s.weight is None else s.weight,
        live=lambda b, n, s: f"set server {b}/{n} weight {1 if s.weight is None else s.weight}",
        read=lambda r: r.weight,
        expected=lambda s: 1 if s.weight is None else s.weight,
    ),
    Option(
        "backup",
        words=lambda s: ("backup",) if s.backup else (),
        value=lambda s: s.backup,
        read=lambda r: r.backup,
        expected=lambda s: s.backup,
    ),
    Option(
        "maxconn",
        words=lambda s: ("maxconn", str(s.maxconn)) if s.maxconn else (),
        value=lambda s: s.maxconn,
        live=lambda b, n, s: f"set maxconn server {b}/{n} {s.maxconn}",
        read=lambda r: r.maxconn,
        expected=lambda s: s.maxconn,
    ),
    Option(
        "cookie",
        words=lambda s: ("cookie", s.cookie) if s.cookie else (),
        value=lambda s: s.cookie,
        addable=False,
        read=lambda r: r.cookie,
        expected=lambda s: s.cookie or None,  # None: a dynamic cookie (or none), checked per backend
    ),
    Option("other", words=lambda s: s.other, value=lambda s: s.other),
)
BY_NAME: Mapping[str, Option] = {o.name: o for o in OPTIONS}
#: Options the runtime API sets on a running slot.
LIVE = tuple(o.name for o in OPTIONS if o.live is not None)


def parse(address: str, port: int, words: tuple[str, ...]) -> Slot:
    """A server line's options (the words after ``ADDRESS:PORT``) as a :class:`Slot`.  A value
    that is not a number keeps its words in ``other``, so any change to it still counts."""
    weight, backup, maxconn, cookie = None, False, 0, ""
    check: list[str] = []
    other: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        arg = words[i + 1] if i + 1 < len(words) else None
        if word == "weight" and arg is not None and arg.isdigit():
            weight, i = int(arg), i + 2
        elif word == "maxconn" and arg is not None and arg.isdigit():
            maxconn, i = int(arg), i + 2
        elif word == "cookie" and arg is not None:
            cookie, i = arg, i + 2
        elif word == "backup":
            backup, i = True, i + 1
        elif word in CHECK_WORDS and (CHECK_WORDS[word] == 0 or arg is not None):
            check += words[i : i + 1 + CHECK_WORDS[word]]
            i += 1 + CHECK_WORDS[word]
        else:
            other.append(word)
            i += 1
    return Slot(address, port, weight, backup, maxconn, tuple(check), cookie, tuple(other))


def words(slot: Slot, *, skip: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The options of a line, in the table's order (the address aside)."""
    return tuple(w for o in OPTIONS if o.name not in skip for w in o.words(slot))


def render_words(instance: Mapping[str, Any], settings: Mapping[str, Any], check_interval: str | None) -> str:
    """The bundled template's server options for one instance (``server_options`` filter):
    ``check_interval`` None means no health check."""
    slot = Slot(
        str(instance["address"]),
        int(instance["port"]),
        weight=instance.get("weight"),
        backup=bool(instance.get("backup")),
        maxconn=int(settings.get("maxconn") or 0),
        check=() if check_interval is None else ("check", "inter", str(check_interval), "fall", "2", "rise", "1"),
    )
    text = " ".join(words(slot))
    return f" {text}" if text else ""


def changed(before: Slot, after: Slot) -> tuple[str, ...]:
    """The options two lines differ in, in the table's order."""
    return tuple(o.name for o in OPTIONS if o.value(before) != o.value(after))


def not_live(names: tuple[str, ...]) -> tuple[str, ...]:
    """Those of ``names`` the runtime API cannot set."""
    return tuple(n for n in names if BY_NAME[n].live is None)


def reusable(held: Slot, wanted: Slot) -> bool:
    """Whether a slot made for ``held`` can serve ``wanted`` after runtime commands."""
    return not not_live(changed(held, wanted))


def not_addable(slot: Slot) -> tuple[str, ...]:
    """Options of ``slot`` that ``add server`` refuses."""
    return tuple(o.name for o in OPTIONS if not o.addable and o.value(slot) != o.value(Slot(slot.address, slot.port)))


def command(option: str, backend: str, name: str, slot: Slot) -> tuple[str, tuple[str, ...]]:
    """The runtime API command that sets ``option`` of a running slot to ``slot``'s value, and
    the answers that mean success."""
    opt = BY_NAME[option]
    if opt.live is None:
        raise ValueError(f"the runtime API cannot set {option}")
    return opt.live(backend, name, slot), opt.answers


def drift(slot: Slot, running: Running) -> str | None:
    """The first option HAProxy runs otherwise than ``slot`` says, as one phrase; None when every
    option HAProxy reported matches.  A value HAProxy was not asked for (None) is not compared."""
    for opt in OPTIONS:
        if opt.read is None or opt.expected is None:
            continue
        want, have = opt.expected(slot), opt.read(running)
        if want is None or have is None or want == have:
            continue
        if opt.name == "address":
            return f"runs at {running.address}:{running.port}, not {_addr(slot)}"
        return f"has {opt.name} {_show(have)}, not {_show(want)}"
    return None


def _show(value: object) -> str:
    return "off" if value is False else "on" if value is True else str(value)
