"""Running a local Consul agent: finding the binary and a dev server's config (for the demo and the tests)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from ..errors import ConfigError

REPO = Path(__file__).resolve().parent.parent.parent


def find_consul(explicit: str | None = None) -> str:
    """The Consul binary: an explicit path, then PATH, then the project cache (scripts/fetch-consul.sh)."""
    for candidate in (explicit, shutil.which("consul"), str(REPO / ".cache/consul/bin/consul")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise ConfigError("no consul binary: run scripts/fetch-consul.sh (or make deps), or pass --consul-bin")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def consul_dev_config(http_port: int, serf_lan: int, serf_wan: int, server: int, dns: int = -1) -> dict[str, object]:
    """Agent config for a single dev server on 127.0.0.1 with its UI; gRPC off, DNS off unless given."""
    return {
        "bind_addr": "127.0.0.1",
        "client_addr": "127.0.0.1",
        "ui": True,
        "ports": {
            "http": http_port,
            "dns": dns,
            "grpc": -1,
            "serf_lan": serf_lan,
            "serf_wan": serf_wan,
            "server": server,
        },
        "disable_update_check": True,
        "log_level": "WARN",
    }
