"""Carry out a decision: validate, swap atomically, then the runtime API or a reload; never lose the live config.

The order is the whole point.  Whatever the path, the candidate is written to a
temporary file beside the output (same filesystem, so ``rename`` is atomic) and
validated with ``haproxy -c`` before anything becomes live; only then is it
renamed over the live file, so any reload (ours, supervisord's, a person's)
reads a config HAProxy accepts.  (A live plan checks only its delta, and nothing
at all when every line it adds has a form HAProxy already accepted under the
same skeleton: :mod:`~discovery.haproxy.forms`.)  The reload path fsyncs the
file and its directory before going on; the live path right after, as soon as
nothing is pending (:meth:`Executor.tick`).  Then:

- live: the runtime API operations, read back with ``show servers state``; any
  failure (a refused command, a socket error, a drift in the read-back) falls
  back to a reload of the file already in place;
- reload: through the master CLI (confirmed) or a command, retried with backoff;
  if HAProxy never takes it, the last good copy is put back.

The executor remembers what HAProxy is known to run and whether it is
``in_sync`` with it.  After a partial live update it is not, and the next
decision is a reload, never "unchanged": HAProxy and the file cannot stay
silently different.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tenacity

from ..errors import HAProxyUnavailable, LiveUpdateFailed, OutputError, ReloadError
from ..haproxy.files import LiveConfig
from ..haproxy.forms import KnownForms
from ..haproxy.master import Reloader
from ..haproxy.plan import delta, parse
from ..haproxy.planner import Planner
from ..haproxy.validate import DEFAULT_CHECK, Validator
from ..retrying import sleeper, stopped
from .decide import Action, Decision, decide
from .events import Event, Validated
from .live import LiveUpdater
from .timeline import no_mark

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    UNCHANGED = "unchanged"  # HAProxy already runs this config
    LIVE = "applied live"  # validated, written, and HAProxy updated through its runtime API, no reload
    WRITTEN = "written"  # validated and written; no HAProxy to reload (yet, or none configured)
    RELOADED = "reloaded"  # validated, written, and HAProxy confirmed the reload
    ROLLED_BACK = "rolled back"  # HAProxy refused it on every try; last good file restored


@dataclass(frozen=True)
class ReloadRetry:
    """How hard to try a reload HAProxy refused: exponential backoff with jitter, to a ceiling."""

    attempts: int = 5
    backoff_min: float = 0.1
    backoff_max: float = 2.0


class TimedValidator:
    """A validator that emits :class:`Validated` with how long each check took and its verdict."""

    def __init__(self, validator: Validator, emit: Callable[[Event], None]) -> None:
        self.validator = validator
        self.emit = emit

    def check(self, candidate: Path, shown_as: Path | None = None) -> None:
        started, ok = time.monotonic(), False
        try:
            self.validator.check(candidate, shown_as)
            ok = True
        finally:
            self.emit(Validated(time.monotonic() - started, ok))


class Executor:
    """Turns decisions into a running HAProxy; the one place (with the watches) where retries live."""

    def __init__(
        self,
        live: LiveConfig,
        validator: Validator | None,
        reloader: Reloader | None,
        stop: threading.Event,
        retry: ReloadRetry = ReloadRetry(),
        updater: LiveUpdater | None = None,
        emit: Callable[[Event], None] | None = None,
    ) -> None:
        self.live = live
        self.validator: Validator | TimedValidator | None = (
            TimedValidator(validator, emit) if validator is not None and emit is not None else validator
        )
        self.reloader = reloader
        self.stop = stop
        self.retry = retry
        self.updater = updater
        self.planner = Planner()
        #: Server line forms HAProxy accepted, trusted only when HAProxy itself is the check.
        self.forms = KnownForms()
        self._trust_forms = validator is not None and validator.command == DEFAULT_CHECK
        self.known_good = 0  # live changes installed without haproxy -c (every line of a known form)
        #: The config HAProxy is known to run, and whether it runs exactly that.
        self.running: str | None = None
        self._at_start: str | None = None  # the config HAProxy ran when prepare() looked
        self.in_sync = True
        #: The running config was written while no HAProxy answered: a HAProxy (re)started at that
        #: moment may have read the file before it, so it is not known to run until one answers
        #: and is reloaded (``in_sync`` stays false until then).
        self.awaiting_haproxy = False
        self._good_unsaved: str | None = None

    def prepare(self) -> None:
        """At start: clean up after a crash, learn what runs, and check HAProxy agrees with the file."""
        self.live.prepare()
        self.running = self.live.read()
        last_good = self.live.read_last_good()
        self._at_start = self.running
        if self.running is not None and last_good not in (None, self.running):
            self._at_start = last_good  # what HAProxy last took
            # The last good copy is saved once HAProxy took a config: a file ahead of it was swapped
            # in by a watcher stopped (killed) before HAProxy was told.  Do not trust it: reload.
            log.warning(
                "%s is newer than what HAProxy last took (%s); a reload will follow",
                self.live.path,
                self.live.last_good.name,
            )
            self.in_sync = False
        elif self.updater is not None and self.running is not None:
            try:
                self.updater.verify(parse(self.running), None)
            except LiveUpdateFailed as exc:
                if not isinstance(exc.__cause__, HAProxyUnavailable):
                    log.warning("HAProxy differs from %s at start (%s); a reload will follow", self.live.path, exc)
                    self.in_sync = False

    def running_servers(self) -> dict[str, tuple[str, ...]]:
        """Backend -> its server names in the config HAProxy ran at start (:meth:`prepare`: the file,
        or the last good copy when the file is ahead of it); none before there is one."""
        parsed = None if self._at_start is None else self.planner.parsed(self._at_start)
        if parsed is None:  # no config yet, or one whose server lines the planner cannot read
            return {}
        return {backend: tuple(parsed.servers_of(backend)) for backend in parsed.backends}

    def decide(self, text: str) -> Decision:
        return decide(
            self.running,
            text,
            in_sync=self.in_sync,
            live_capable=self.updater is not None,
            planner=self.planner,
            held=getattr(self.updater, "held", None),
        )

    def execute(self, decision: Decision, text: str, mark: Callable[[str], None] = no_mark) -> Outcome:
        """Make ``text`` what HAProxy runs, as ``decision`` says; ``mark(stage)`` as each stage ends.

        Raises ValidationError when HAProxy rejects the text (nothing changed),
        OutputError when the file cannot be written.
        """
        if decision.action is Action.NOTHING:
            return Outcome.UNCHANGED
        if self.awaiting_haproxy and text == self.running:
            return self._reload(text, mark)  # validated and in place already: only HAProxy must take it
        self._install(decision, text, mark)
        if decision.action is Action.LIVE:
            assert self.updater is not None
            try:
                count = self.updater.execute(decision.ops, decision.parsed, mark)
            except LiveUpdateFailed as exc:
                log.warning("live update failed: %s; reloading instead", exc)
                self.in_sync = False  # some operations may have gone through
                return self._reload(text, mark)
            log.info("runtime API: %d operations", count)
            self._ran(text)
            return Outcome.LIVE
        return self._reload(text, mark)

    def _install(self, decision: Decision, text: str, mark: Callable[[str], None]) -> None:
        """Validate and swap in ``text``: a live plan checks only its delta, or nothing when every
        line it adds has a form HAProxy already accepted (:mod:`~discovery.haproxy.forms`)."""
        if decision.action is not Action.LIVE:
            self.live.install(text, self.validator, None, mark)
            self.forms.relearn(lambda: self.planner.parsed(text))
        elif self._trust_forms and self.forms.cover(decision.ops):
            self.live.install(text, None, None, mark, durable=False)
            self.known_good += 1
        else:
            self.live.install(text, self.validator, delta(text, decision.ops), mark, durable=False)
            self.forms.learn_ops(decision.ops)

    def tick(self) -> None:
        """Housekeeping while nothing is pending: delete drained servers, save the last good copy, learn
        the line forms of a config HAProxy took whole."""
        if self.updater is not None and self.updater.draining and self.updater.tick():
            self.in_sync = False  # HAProxy keeps a server the file does not list: a reload repairs that
        self.save_last_good()
        if self.updater is not None and self._trust_forms:
            self.forms.settle()

    def save_last_good(self) -> None:
        """Make the live file durable and keep the config HAProxy last took as OUTPUT.last-good
        (both off the critical path of an apply)."""
        self.live.sync()
        if self._good_unsaved is not None:
            text, self._good_unsaved = self._good_unsaved, None
            try:
                self.live.keep_as_last_good(text)
            except OutputError:
                self._good_unsaved = text  # a full disk, say: saved on a later idle turn
                raise

    def _ran(self, text: str) -> None:
        self.running, self.in_sync, self._good_unsaved = text, True, text
        self.awaiting_haproxy = False

    def _reload(self, text: str, mark: Callable[[str], None] = no_mark) -> Outcome:
        if self.reloader is None:
            self._ran(text)
            return Outcome.WRITTEN
        try:
            what = self._reload_with_retry()
        except HAProxyUnavailable as exc:
            # Nothing runs yet (or it is being restarted): a HAProxy that starts now reads the new
            # file, but one restarted a moment ago may have read the older one.  Not known to run
            # until a HAProxy answers and takes it (the watcher retries).
            if not self.awaiting_haproxy:
                log.info("%s; config written, HAProxy reads it when it starts (reloaded once one answers)", exc)
            self.running, self.in_sync, self.awaiting_haproxy = text, False, True
            if self.updater is not None:
                self.updater.forget()
            return Outcome.WRITTEN
        except ReloadError as exc:
            self._good_unsaved = None
            self.forms.forget()  # learnt under a skeleton HAProxy never took
            restored = self.live.restore_last_good()
            log.error(
                "reload failed after %d attempts: %s; %s",
                self.retry.attempts,
                exc,
                "last good config restored" if restored is not None else "no last good config to restore",
            )
            if restored is not None:
                self.running = restored  # the previous worker keeps serving it (plus any live change)
            return Outcome.ROLLED_BACK
        mark("reload")
        log.info("reloaded: %s", what)
        if self.updater is not None:
            self.updater.forget()
        self._ran(text)
        return Outcome.RELOADED

    def _reload_with_retry(self) -> str:
        assert self.reloader is not None
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(ReloadError)
            & tenacity.retry_if_not_exception_type(HAProxyUnavailable),
            wait=tenacity.wait_random_exponential(multiplier=self.retry.backoff_min, max=self.retry.backoff_max),
            stop=tenacity.stop_any(tenacity.stop_after_attempt(self.retry.attempts), stopped(self.stop)),
            sleep=sleeper(self.stop),
            before_sleep=lambda s: log.warning(
                "reload attempt %d failed: %s; retrying", s.attempt_number, s.outcome.exception() if s.outcome else "?"
            ),
            reraise=True,
        )
        return retrying(self.reloader.reload)
