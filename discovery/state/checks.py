"""What may reach an HAProxy config: the one place that decides.

Anyone who can register a service in Consul writes into our HAProxy config, so
every name, tag, meta value and address that comes from the catalog is untrusted.
HAProxy splits its config on whitespace, treats ``#`` as a comment and expands
quotes and backslashes, so one newline in a tag would become a new directive.
Rather than escaping (which depends on where a template puts the value), we accept
only values that are inert anywhere in a config line, and reject the rest.
``disco register`` applies the same rules to its own input, so what disco
registers is always usable by ``disco watch``.
"""

from __future__ import annotations

import ipaddress
import re

#: Service and backend names: HAProxy proxy names allow letters, digits and ``-_.:``;
#: Consul recommends DNS-compatible names.  We take the intersection.
SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
#: Server names (from service IDs and node names): HAProxy's own character set.
SERVER_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,127}")
#: Tags and meta values: printable, no whitespace, quotes, backslash, ``#`` or ``$``.
TAG = re.compile(r"[A-Za-z0-9_.:/=@+,%-]{1,255}")
META_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
META_VALUE = re.compile(r"[A-Za-z0-9_.:/=@+,%-]{0,512}")
#: HTTP check paths: RFC 3986 path and query characters, no whitespace, quotes or backslashes.
CHECK_PATH = re.compile(r"/[A-Za-z0-9_.~:/?@!&+,;=%*()\[\]-]{0,1023}")
#: HTTP check URLs: a scheme, then the same characters as a path.
CHECK_URL = re.compile(r"https?://[A-Za-z0-9_.~:/?@!&+,;=%*()\[\]-]{1,1024}")


def show(value: object, limit: int = 40) -> str:
    """A short, printable rendering of an untrusted value for one log line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check(pattern: re.Pattern[str], value: object, what: str) -> str | None:
    """Return why ``value`` is unsafe as ``what``, or None when it is fine."""
    if not isinstance(value, str):
        return f"{what} {show(value)} is not a string"
    if pattern.fullmatch(value) is None:
        return f"{what} {show(value)} has characters or a length an HAProxy config cannot carry safely"
    return None


def check_address(value: object) -> str | None:
    """An IPv4 or IPv6 address; None when fine, else the reason.

    Host names are refused: HAProxy resolves them only when it loads the config, and
    one name that does not resolve makes the whole config invalid (found by the
    property test in tests/unit/test_hostile.py).
    """
    if not isinstance(value, str) or not value:
        return f"address {show(value)} is empty or not a string"
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"address {show(value)} is not an IP address"
    if "%" in value:
        return f"address {show(value)} has an IPv6 zone, which HAProxy server lines cannot carry"
    return None


def check_port(value: object) -> str | None:
    """A TCP port 1..65535; None when fine, else the reason."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return f"port {show(value)} is outside 1..65535"
    return None


def format_address(address: str) -> str:
    """``address:port`` needs brackets around IPv6 addresses in HAProxy's server lines."""
    return f"[{address}]" if ":" in address else address
