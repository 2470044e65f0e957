"""What ``disco registrator`` sends to the agent and how it reads the agent and the engine back (pure)."""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping
from typing import Any

from ..settings import format_duration
from .labels import Container, Wanted

#: Docker's health verdict as a Consul check status (``starting`` is not yet healthy).
HEALTH = {"healthy": "passing", "unhealthy": "critical", "starting": "critical"}
#: Signals that stop a container (besides its own StopSignal): a ``kill`` with one of them drains it.
STOPPING = {signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGQUIT}


def docker_check_id(service_id: str) -> str:
    return f"service:{service_id}:docker"


def payload(wanted: Wanted, container: Container, ttl: float) -> dict[str, Any]:
    """The registration body; with a Docker HEALTHCHECK, a TTL check holding Docker's verdict too."""
    body = wanted.registration.payload()
    if wanted.docker_health:
        checks = [body.pop("Check")] if "Check" in body else []
        checks.append(
            {
                "CheckID": docker_check_id(wanted.id),
                "Name": "Docker HEALTHCHECK",
                "TTL": format_duration(ttl),
                "Status": HEALTH.get(container.health, "critical"),
                "Notes": "Docker's health verdict, relayed by disco registrator",
            }
        )
        body["Checks"] = checks
    return body


def _signal(text: str) -> signal.Signals | None:
    """``15``, ``TERM`` or ``SIGTERM`` as a signal; None when it names none."""
    text = text.strip().upper()
    try:
        return signal.Signals(int(text)) if text.isdigit() else signal.Signals["SIG" + text.removeprefix("SIG")]
    except (KeyError, ValueError):
        return None


def check_ids(wanted: Wanted) -> list[str]:
    """The checks the agent must hold for ``wanted``; one missing means registering it again."""
    ids = [] if wanted.registration.check.kind == "none" else [wanted.registration.check_id]
    return [*ids, docker_check_id(wanted.id)] if wanted.docker_health else ids


def differs(entry: Mapping[str, Any], wanted: Wanted) -> bool:
    """Whether the agent's entry (``/v1/agent/services``) is not what ``wanted`` registers."""
    reg = wanted.registration
    return (
        entry.get("Service"),
        entry.get("Address"),
        entry.get("Port"),
        sorted(entry.get("Tags") or []),
        dict(entry.get("Meta") or {}),
    ) != (reg.service, reg.address, reg.port, sorted(reg.tags), dict(reg.meta))


def stops(sig: str, stop_signal: str = "") -> bool:
    """Whether a ``kill`` event's signal stops the container (an unreadable one is taken as stopping)."""
    got = _signal(sig)
    return got is None or got in STOPPING or (bool(stop_signal) and got == _signal(stop_signal))


def event_lag(event: Mapping[str, Any]) -> str:
    """How long after the engine's event the agent was told (both clocks are this host's)."""
    nanos = event.get("timeNano")
    return f"{(time.time() - nanos / 1e9) * 1000:.0f} ms after the event" if isinstance(nanos, int) else "?"
