"""What every command shares: the Consul address option, logging, signals, and the one error edge.

Exit status: 0 done; 1 a runtime failure (Consul, HAProxy, a file); 2 bad input
(a flag, a file the user named, an environment value).  ``DiscoveryError`` is
turned into that line and status by :func:`fail`, called only by the commands' outermost ``except``.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from ..errors import ConfigError, DiscoveryError
from ..signals import SignalRelay

ConsulAddr = Annotated[
    str | None,
    typer.Option(
        "--consul-addr",
        metavar="URL",
        help="Consul HTTP API, e.g. http://127.0.0.1:8500. Default: $CONSUL_HTTP_ADDR, else http://127.0.0.1:8500. "
        "The ACL token comes from $CONSUL_HTTP_TOKEN or $CONSUL_HTTP_TOKEN_FILE.",
    ),
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details too.")]


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JSONFormatter(logging.Formatter):
    """One JSON object per line with the fields of the text lines: time, level, logger, message
    (and the traceback, when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def setup_logging(verbose: bool, log_format: str = "text") -> None:
    if log_format not in ("text", "json"):
        raise ConfigError(f"invalid --log-format {log_format!r}: use text or json")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    for noisy in ("urllib3", "requests"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def on_signals(action: Callable[[], None]) -> SignalRelay:
    """SIGTERM and SIGINT call ``action`` (supervisord sends SIGTERM); see :class:`SignalRelay`."""
    relay = SignalRelay(action)
    relay.install(signal.SIGTERM, signal.SIGINT)
    return relay


def fail(exc: DiscoveryError) -> typer.Exit:
    typer.echo(f"disco: error: {exc}", err=True)
    return typer.Exit(2 if isinstance(exc, ConfigError) else 1)
