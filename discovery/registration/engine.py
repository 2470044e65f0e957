"""The Docker engine through the Docker SDK: the only module of the registrator that talks to it.

Reads only: the running containers, one container, the event stream (``DOCKER_HOST``,
else the local socket).  Every transport or API failure becomes
:class:`~discovery.errors.DockerUnavailable`; a container that vanished is ``None``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import DockerUnavailable
from .labels import Container, from_inspect

log = logging.getLogger(__name__)

#: Docker 20.10's API: every engine since answers it, and naming it avoids a request at start.
API_VERSION = "1.41"
#: Container actions the registrator reacts to; network connect/disconnect re-read the container.
ACTIONS = ("start", "kill", "stop", "die", "destroy", "pause", "unpause", "health_status")


def _docker() -> Any:
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - the [docker] extra is missing
        from ..errors import ConfigError

        raise ConfigError(
            "disco registrator needs the Docker SDK (a dependency of disco-haproxy): pip install disco-haproxy"
        ) from exc
    return docker


class Engine:
    """One Docker client per user thread (the SDK's session is not shared across threads)."""

    def __init__(self, timeout: float = 10.0, environment: Mapping[str, str] | None = None) -> None:
        docker = _docker()
        self._errors = (docker.errors.DockerException, OSError)
        try:
            # An explicit API version: no request at construction, so an engine that is down is
            # reported (and retried) by the first call instead of failing the start.
            self._client = docker.from_env(version=API_VERSION, timeout=timeout, environment=environment)
        except docker.errors.DockerException as exc:
            raise DockerUnavailable(f"Docker engine: {exc}") from exc
        self._not_found = docker.errors.NotFound
        self._stream: Any = None

    def running(self) -> list[Container]:
        """Every running (or paused) container, inspected."""
        try:
            return [from_inspect(c.attrs) for c in self._client.containers.list(ignore_removed=True)]
        except self._errors as exc:
            raise DockerUnavailable(f"Docker engine: {_brief(exc)}") from exc

    def inspect(self, container_id: str) -> Container | None:
        try:
            return from_inspect(self._client.api.inspect_container(container_id))
        except self._not_found:
            return None
        except self._errors as exc:
            raise DockerUnavailable(f"Docker engine: {_brief(exc)}") from exc

    def events(self) -> Iterator[dict[str, Any]]:
        """Open the event stream (raises DockerUnavailable) and return its iterator.

        :meth:`close` from another thread ends the iteration.
        """
        filters = {"type": ["container", "network"], "event": [*ACTIONS, "connect", "disconnect"]}
        try:
            self._stream = self._client.events(decode=True, filters=filters)
        except self._errors as exc:
            raise DockerUnavailable(f"Docker engine events: {_brief(exc)}") from exc
        return self._iterate(self._stream)

    def _iterate(self, stream: Any) -> Iterator[dict[str, Any]]:
        try:
            yield from stream
        except Exception as exc:
            raise DockerUnavailable(f"Docker event stream broke: {_brief(exc)}") from exc

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception as exc:
                log.debug("closing the event stream: %s", exc)


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
