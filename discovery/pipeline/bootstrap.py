"""The first config, before Consul has answered: every service, no instances (``watch --bootstrap``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..haproxy.files import LiveConfig
from ..haproxy.render import Renderer
from ..state.model import DesiredState, Service

if TYPE_CHECKING:
    from .watch_config import WatchConfig

log = logging.getLogger("discovery.pipeline.watcher")


def bootstrap(
    config: WatchConfig, env: Mapping[str, str] | None = None, dry_run: Callable[[str], None] | None = None
) -> bool:
    """Write a validated config with every service and no instances, if there is no config yet.

    For process supervisors that start HAProxy beside the watcher: HAProxy needs a
    file before Consul has answered.  Needs no Consul.  Returns whether a file was written.
    With ``dry_run`` (``watch --dry-run``), the config is handed to it instead: nothing is
    written, not even ``OUTPUT.last-good`` or a candidate to validate.
    """
    live = LiveConfig(config.output)
    if live.read() is not None:
        return False
    empty = DesiredState(tuple(Service(name) for name in config.services))
    text = Renderer(config.template).render(empty, config.values, dict(os.environ if env is None else env))
    if dry_run is not None:
        dry_run(text)
        log.info("dry run: bootstrap config for %s not written (%s)", config.output, empty.summary())
        return False
    live.install(text, config.validator)
    live.keep_as_last_good(text)
    log.info("bootstrap config written to %s (%s)", config.output, empty.summary())
    return True
