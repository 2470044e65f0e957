"""Settings resolved once, in one order: flags > environment > defaults.

python-consul2 reads ``CONSUL_HTTP_ADDR`` behind our back and ignores
``CONSUL_HTTP_TOKEN``; we resolve everything here and hand it explicit values,
so that what a user passes on the command line always wins.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError

DEFAULT_CONSUL_ADDR = "http://127.0.0.1:8500"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Parse Consul/Go-style durations (``250ms``, ``5s``, ``1m30s``) into seconds.

    A bare number means seconds, which is what people type most often.
    """
    raw = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        return float(raw)
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(raw):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(raw) or not raw:
        raise ConfigError(f"invalid duration {text!r}: use forms like 250ms, 5s, 1m30s")
    return total


def format_duration(seconds: float) -> str:
    """Seconds to the shortest Consul duration string (Consul wants ``10s``, not ``10.0``)."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def parse_wait(text: str) -> tuple[float, float]:
    """``MIN[:MAX]`` quiescence timers; MAX defaults to 4 x MIN like consul-template."""
    low_text, _, high_text = text.partition(":")
    low = parse_duration(low_text)
    high = parse_duration(high_text) if high_text else low * 4
    if high < low:
        raise ConfigError(f"invalid --wait {text!r}: MAX must not be below MIN")
    return low, high


def parse_pairs(items: Iterable[str], what: str) -> dict[str, str]:
    """``K=V`` items into a dict; keys must be identifiers a template can name."""
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
            raise ConfigError(f"invalid {what} {item!r}: expected KEY=VALUE")
        result[key] = value
    return result


@dataclass(frozen=True)
class ConsulSettings:
    """Where and how to reach Consul's HTTP API."""

    scheme: str = "http"
    host: str = "127.0.0.1"
    port: int = 8500
    token: str | None = None
    token_file: Path | None = None
    ca_file: Path | None = None
    verify: bool = True

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def current_token(self) -> str | None:
        """The token to send now; a token file is re-read so that rotation needs no restart."""
        if self.token_file is not None:
            return self.token_file.read_text().strip() or None  # OSError: the caller decides
        return self.token


def parse_consul_addr(addr: str, ssl: bool = False) -> tuple[str, str, int]:
    """``http://host:port``, ``https://host:port`` or ``host:port`` into its parts."""
    text = addr.strip()
    if "://" not in text:
        text = ("https://" if ssl else "http://") + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"invalid Consul address {addr!r}: expected http://HOST:PORT")
    try:
        port = parts.port or (8501 if parts.scheme == "https" else 8500)
    except ValueError as exc:
        raise ConfigError(f"invalid Consul address {addr!r}: bad port") from exc
    return parts.scheme, parts.hostname, port


def consul_settings(
    addr: str | None = None, token: str | None = None, env: Mapping[str, str] | None = None
) -> ConsulSettings:
    """Resolve Consul settings: explicit arguments, then CONSUL_HTTP_* variables, then defaults."""
    env = os.environ if env is None else env
    ssl = env.get("CONSUL_HTTP_SSL", "").lower() in ("1", "true", "yes")
    scheme, host, port = parse_consul_addr(addr or env.get("CONSUL_HTTP_ADDR") or DEFAULT_CONSUL_ADDR, ssl)
    token_file = None
    if token is None:
        token = env.get("CONSUL_HTTP_TOKEN") or None
        if token is None and env.get("CONSUL_HTTP_TOKEN_FILE"):
            token_file = Path(env["CONSUL_HTTP_TOKEN_FILE"])
            try:
                token_file.read_text()
            except OSError as exc:
                raise ConfigError(f"cannot read CONSUL_HTTP_TOKEN_FILE {token_file}: {exc.strerror}") from exc
    ca = env.get("CONSUL_CACERT")
    verify = env.get("CONSUL_HTTP_SSL_VERIFY", "true").lower() not in ("0", "false", "no")
    return ConsulSettings(
        scheme=scheme,
        host=host,
        port=port,
        token=token,
        token_file=token_file,
        ca_file=Path(ca) if ca else None,
        verify=verify,
    )
