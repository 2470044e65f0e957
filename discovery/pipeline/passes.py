"""One pass of the pipeline: render (pure), decide (pure, :mod:`~discovery.pipeline.decide`),
execute (:mod:`~discovery.pipeline.execute`).

Failover backups and operator overrides are merged into the desired state first; discovered
services that would take a name of the template's own sections are left out.  Every step emits an
event (:mod:`~discovery.pipeline.events`); an error is reported, the live config kept, and the
watcher is told (``retry``) so that it can try the pass again.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Mapping

from ..errors import DiscoveryError, OutputError
from ..state.model import DesiredState
from .events import Applied, Decided, Event, Failed, Rendered
from .execute import Executor, Outcome
from .failover import FailoverStage
from .overrides import OverrideStage
from .template_file import TemplateFile
from .timeline import Timeline

#: C-level readers for the per-service loops of every pass (2,500 services: a generator was 6 % of a change's CPU).
_NAME, _INSTANCES = operator.attrgetter("name"), operator.attrgetter("instances")

# The watcher's lines, under the name they had before this module was split out of it.
log = logging.getLogger("discovery.pipeline.watcher")


class Passes:
    """Runs passes; a dry run (no ``executor``) prints the rendered config to ``output`` instead."""

    def __init__(
        self,
        template: TemplateFile,
        values: Mapping[str, str],
        env: Mapping[str, str],
        failover: FailoverStage,
        overrides: OverrideStage,
        executor: Executor | None,
        emit: Callable[[Event], None],
        output: Callable[[str], None],
        retry: Callable[[DiscoveryError | None], None],
        clock: Callable[[], float],
    ) -> None:
        self._template = template
        self.values = values
        self.env = env
        self._failover = failover
        self._overrides = overrides
        self.executor = executor
        self.emit = emit
        self.output = output
        self.retry = retry
        self.clock = clock
        self._route_notes: tuple[str, ...] = ()
        self._refused: tuple[tuple[str, str], ...] = ()

    def run(self, state: DesiredState, timeline: Timeline) -> tuple[Outcome | None, DiscoveryError | None]:
        """Render, decide and execute one state; errors are reported, the live config kept."""
        applied = self._overrides.apply(self._failover.merge(state))
        state = applied.state
        summary = state.summary()
        stage = "render"
        try:
            state = self._admit(state)
            summary = state.summary()
            self._report_routes(state)
            timeline.mark("state")
            started = self.clock()
            text = self._template.renderer.render(state, self.values, self.env)
            timeline.mark("render")
            self.emit(Rendered(summary, len(text), self.clock() - started))
            if self.executor is None:
                self.output(text)
                return None, None
            stage = "apply"
            decision = self.executor.decide(text)
            timeline.mark("decide")
            self.emit(Decided(summary, decision))
            started = self.clock()
            if self.executor.running is not None and self.executor.in_sync:
                self._overrides.executing(applied, self.executor.planner.parsed(self.executor.running))
            outcome = self.executor.execute(decision, text, timeline.mark)
            self._overrides.executed(applied, self.executor.planner.parsed(self.executor.running or text))
        except DiscoveryError as exc:
            self.emit(Failed(stage, exc, self._kept(exc)))
            self.retry(exc)
            return None, exc
        in_sync = self.executor.in_sync
        self.emit(
            Applied(
                summary,
                outcome.value,
                self.clock() - started,
                in_sync,
                tuple(zip(map(_NAME, state.services), map(len, map(_INSTANCES, state.services)), strict=True)),
            )
        )
        self.emit(timeline.timed())
        self.retry(None)
        return outcome, None

    def _admit(self, state: DesiredState) -> DesiredState:
        """Discovered services that would take a name of the template's own sections are left out:
        one line when a service is first refused; every other service goes on."""
        admission = self._template.renderer.admit(state, self.values, self.env)
        if admission.refused != self._refused:
            before = dict(self._refused)
            for name, reason in admission.refused:
                if before.get(name) != reason:
                    log.warning("discover: %s", reason)
            self._refused = admission.refused
        return admission.state

    def _report_routes(self, state: DesiredState) -> None:
        """Route conflicts and ignored TCP routes: logged once each time they change."""
        notes = self._template.renderer.routing(state, self.values).notes
        if notes != self._route_notes:
            for note in notes:
                log.warning("routing: %s", note)
            self._route_notes = notes

    def _kept(self, exc: DiscoveryError) -> str:
        if self.executor is not None and not self.executor.in_sync:
            return "HAProxy may differ from the file; retrying with a reload"
        if isinstance(exc, OutputError):
            return "the live config is unchanged; retrying"
        return "the live config is unchanged"
