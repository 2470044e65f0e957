"""Server lines whose form HAProxy already accepted: a live change made only of those needs no ``haproxy -c``.

A live plan changes nothing but ``server`` lines of existing backends; the rest
of the config (its skeleton) is the one HAProxy runs.  A server line's *form* is
the line with its per-instance values abstracted: its backend, the IP version
of its address, and its options with the weight's value taken out.  The values
abstracted are exactly those with a fixed grammar HAProxy cannot refuse:

- the address, an IPv4 or IPv6 literal (a host name is never abstracted: HAProxy
  resolves it while parsing, so it may fail where another name did not);
- the port, 1-65535; the weight, 0-256;
- the server name, ``[A-Za-z0-9._-]`` (and unique in its backend: the planner
  refuses a config with two servers of one name, which then goes through a reload).

Every form in a config that ``haproxy -c`` accepted is remembered; a live plan
whose added or changed lines all have a remembered form is known good, and
``haproxy -c`` (10 ms or more, most of a live change's time) is skipped.  Any
other line, a new option, a host name, a new backend's first server, is checked
as before.  Only the default check command is trusted this way: a custom
``--check-cmd`` may judge more than HAProxy's grammar, so it sees every candidate.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable

from .plan import Op, ParsedConfig, Remove, ServerLine

_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
Form = tuple[str, int, tuple[str, ...]]


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


@functools.lru_cache(maxsize=65536)
def _ip_version(address: str) -> int | None:
    """4 or 6 for an IP literal, None for anything else (``ipaddress`` is slow: 10,000 servers
    are learnt again at every reload, mostly the same addresses; a dotted quad, the usual
    address, is told by a regular expression, 20 times faster)."""
    if _IPV4.fullmatch(address):
        return 4
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return None


def form(server: ServerLine) -> Form | None:
    """The line's form, or None when one of its values is not of a kind a form may abstract."""
    version = _ip_version(server.address)
    if version is None:
        return None
    if not (1 <= server.port <= 65535 and _NAME.fullmatch(server.name)):
        return None
    options, weight_next = [], False
    for opt in server.options:
        if weight_next:
            if not (opt.isdigit() and 0 <= int(opt) <= 256):
                return None
            options.append("<weight>")
            weight_next = False
            continue
        weight_next = opt == "weight"
        options.append(opt)
    if weight_next:
        return None
    return server.backend, version, tuple(options)


class KnownForms:
    """The forms HAProxy accepted, learnt from every config ``haproxy -c`` passed."""

    #: Beyond this many distinct forms, something renders a unique option per server: stop learning.
    LIMIT = 10_000

    def __init__(self) -> None:
        self._forms: set[Form] = set()
        self._unlearnt: Callable[[], ParsedConfig | None] | None = (
            None  # a whole config accepted, learnt when first needed
        )

    def learn(self, servers: Iterable[ServerLine]) -> None:
        for server in servers:
            if len(self._forms) >= self.LIMIT:
                return
            shape = form(server)
            if shape is not None:
                self._forms.add(shape)

    def learn_ops(self, ops: Iterable[Op]) -> None:
        self.learn(op.server for op in ops if not isinstance(op, Remove))

    def relearn(self, parsed: Callable[[], ParsedConfig | None]) -> None:
        """A whole new config was accepted: its forms replace the old ones.  ``parsed`` gives its
        parse when the next :meth:`cover` needs it, so a reload (or a run of them, or a watcher
        with no runtime API) neither parses nor learns for nothing."""
        self.forget()
        self._unlearnt = parsed

    def settle(self) -> None:
        """Learn the last config accepted whole now (the watcher's idle time), not in the next change's
        path (50,000 servers' forms take tens of milliseconds)."""
        if self._unlearnt is not None:
            parsed, self._unlearnt = self._unlearnt(), None
            if parsed is not None:
                self.learn(parsed.servers.values())

    def cover(self, ops: Iterable[Op]) -> bool:
        """Whether every line the operations add or change has a form HAProxy accepted."""
        self.settle()
        for op in ops:
            if isinstance(op, Remove):
                continue
            shape = form(op.server)
            if shape is None or shape not in self._forms:
                return False
        return True

    def forget(self) -> None:
        """The skeleton changed (a reload): what was accepted under the old one proves nothing."""
        self._forms.clear()
        self._unlearnt = None
