"""Put a rendered config live: validate, swap atomically, reload, and never lose the last good one.

The order is the whole point.  The candidate is written to a temporary file
beside the output (same filesystem, so ``rename`` is atomic), fsynced,
validated, and only then renamed over the live file.  After HAProxy confirms the
reload, a copy is kept as ``<output>.last-good``.  If HAProxy refuses the new
file on every retry, the last good copy is put back, so the file on disk always
describes a config HAProxy accepts.  A crash at any moment leaves either the old
or the new complete file, never a partial one.
"""

from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass

import tenacity

from ..errors import HAProxyUnavailable, LiveUpdateFailed, ReloadError, ValidationError
from ..haproxy.master import Reloader
from ..haproxy.files import LiveConfig, write_atomic
from .live import LiveUpdater
from ..haproxy.plan import Plan, Planner
from ..haproxy.validate import Validator

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    UNCHANGED = "unchanged"      # the live file already says this
    LIVE = "applied live"        # written, and HAProxy updated through its runtime API, no reload
    WRITTEN = "written"          # written; no HAProxy to reload (yet, or none configured)
    RELOADED = "reloaded"        # written and HAProxy confirmed the reload
    ROLLED_BACK = "rolled back"  # HAProxy refused it on every try; last good file restored


@dataclass(frozen=True)
class ReloadRetry:
    """How hard to try a reload HAProxy refused: exponential backoff with jitter, to a ceiling."""

    attempts: int = 5
    backoff_min: float = 0.1
    backoff_max: float = 2.0


class Applier:
    """Validate, swap and reload; the one place (with the watch) where retries live."""

    def __init__(self, live: LiveConfig, validator: Validator | None, reloader: Reloader | None,
                 stop: threading.Event, retry: ReloadRetry = ReloadRetry(),
                 updater: LiveUpdater | None = None) -> None:
        self.live = live
        self.validator = validator
        self.reloader = reloader
        self.stop = stop
        self.retry = retry
        self.updater = updater
        self._unvalidated: str | None = None
        self._planner = Planner()

    def tick(self) -> None:
        """Housekeeping between changes: delete servers that finished draining."""
        if self.updater is not None and self.updater.draining:
            self.updater.tick()

    def apply(self, text: str) -> Outcome:
        """Make ``text`` the live config, through the runtime API when only servers changed.

        Raises ValidationError when HAProxy rejects the text: the live file is untouched.
        """
        current = self.live.read()
        if current == text:
            return Outcome.UNCHANGED
        if self.updater is not None and current is not None:
            change = self._planner.plan(current, text)
            if change.live:
                return self._apply_live(change, text)
            log.info("reload needed: %s", change.reload_reason)
        return self._apply_by_reload(text)

    def _apply_live(self, change: Plan, text: str) -> Outcome:
        """Server-only change: file first, then the runtime API, then validation off the critical path.

        The file is swapped before HAProxy changes, so a reload at any moment (by us,
        by supervisord, by a person) reads the servers that are running.  Its skeleton
        is the one HAProxy already accepted; only server lines differ, and HAProxy's
        ``add server`` parses those itself.  The full ``haproxy -c`` runs in
        :meth:`settle`, once changes pause, so a burst is not slowed by one check each.
        """
        write_atomic(self.live.path, text)
        assert self.updater is not None
        try:
            count = self.updater.execute(change, self._planner.parsed(text))
        except LiveUpdateFailed as exc:
            log.warning("live update failed: %s; reloading instead", exc)
            self._unvalidated = None
            return self._apply_by_reload(text, installed=True)
        self._unvalidated = text
        log.info("runtime API: %d operations", count)
        return Outcome.LIVE

    def settle(self) -> None:
        """Validate what live updates wrote; on rejection put the last good config back and reload.

        Raises ValidationError after restoring, so the caller can report it.
        """
        text, self._unvalidated = self._unvalidated, None
        if text is None:
            return
        self._validate_in_place()
        self.live.keep_as_last_good(text)

    def _validate_in_place(self) -> None:
        """Check the file already on disk; if HAProxy rejects it, put the last good one back,
        reload so HAProxy runs what the file says again, and re-raise."""
        try:
            if self.validator is not None:
                self.validator.check(self.live.path)
        except ValidationError:
            self.live.restore_last_good()
            self._reload_quietly()
            raise

    def _reload_quietly(self) -> None:
        try:
            if self.reloader is not None:
                self._reload()
        except ReloadError as exc:
            log.error("reload to restore the file's config failed: %s", exc)
        if self.updater is not None:
            self.updater.forget()

    def _apply_by_reload(self, text: str, installed: bool = False) -> Outcome:
        self._unvalidated = None  # this path validates what it installs
        if installed:  # already on disk (a live update that failed): validate it where it is
            self._validate_in_place()
        else:
            self.live.install(text, self.validator)
        if self.reloader is None:
            self.live.keep_as_last_good(text)
            return Outcome.WRITTEN
        try:
            what = self._reload()
        except HAProxyUnavailable as exc:
            # Nothing runs yet (or it is being restarted): it reads the new file when it starts.
            log.info("%s; config written, HAProxy reads it when it starts", exc)
            self.live.keep_as_last_good(text)
            return Outcome.WRITTEN
        except ReloadError as exc:
            restored = self.live.restore_last_good()
            log.error("reload failed after %d attempts: %s; %s", self.retry.attempts, exc,
                      "last good config restored" if restored else "no last good config to restore")
            return Outcome.ROLLED_BACK
        log.info("reloaded: %s", what)
        if self.updater is not None:
            self.updater.forget()
        self.live.keep_as_last_good(text)
        return Outcome.RELOADED

    def _reload(self) -> str:
        assert self.reloader is not None
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(ReloadError)
            & tenacity.retry_if_not_exception_type(HAProxyUnavailable),
            wait=tenacity.wait_random_exponential(multiplier=self.retry.backoff_min, max=self.retry.backoff_max),
            stop=tenacity.stop_any(tenacity.stop_after_attempt(self.retry.attempts), lambda _s: self.stop.is_set()),
            sleep=self.stop.wait,
            before_sleep=lambda s: log.warning("reload attempt %d failed: %s; retrying", s.attempt_number,
                                               s.outcome.exception() if s.outcome else "?"),
            reraise=True,
        )
        return retrying(self.reloader.reload)

