"""The template file, followed: an edit is loaded without a restart, a broken edit never replaces a good one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ..errors import TemplateError
from ..haproxy.render import Renderer

log = logging.getLogger(__name__)


class TemplateFile:
    """The loaded template (``renderer``), looked at again at most every ``poll`` seconds."""

    def __init__(self, path: Path, poll: float, clock: Callable[[], float]) -> None:
        self.path = path
        self.poll = poll
        self.clock = clock
        self.renderer = Renderer(path)  # TemplateError at start: bad input, exit 2
        self._mtime = _mtime(path)
        self._next_check = 0.0

    def changed(self) -> bool:
        """Whether the file was edited into a template that loads (the renderer is then the new one)."""
        now = self.clock()
        if now < self._next_check:
            return False
        self._next_check = now + self.poll
        mtime = _mtime(self.path)
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            self.renderer = Renderer(self.path)
        except TemplateError as exc:
            log.error("template edit not applied: %s", exc)
            return False
        log.info("template %s changed", self.path)
        return True


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return None
