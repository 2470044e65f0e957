"""``disco plan``: what ``disco watch`` would do now, touching nothing.

Consul is read once (the same conversion the watches use), the template rendered, and
the same pure :func:`~discovery.pipeline.decide.decide` compares the candidate with the
live config.  With a runtime socket, HAProxy's servers are read back first (read-only,
like the watcher's start): if they differ from the file, the answer is a reload, as it
would be for ``watch``.  The candidate is validated with ``haproxy -c`` in a private
temporary directory, never beside the live config.  The sanity gate is not evaluated: it
judges changes as they arrive, and a single read has no history.
"""

from __future__ import annotations

import difflib
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..consul.client import Catalog
from ..errors import ValidationError
from ..haproxy.plan import describe
from ..haproxy.runtime import RuntimeAPI
from ..pipeline.decide import Action, Decision, decide
from ..pipeline.watch_config import WatchConfig
from .views import observe, read_state

__all__ = ["BROKEN", "CHANGES", "NO_CHANGE", "PlanReport", "make_plan", "read_state", "validate_privately"]

#: Exit status of ``disco plan`` (1 and 2 are every command's: runtime failure, bad input).
NO_CHANGE, CHANGES, BROKEN = 0, 3, 4


@dataclass(frozen=True)
class PlanReport:
    summary: str  # what Consul says: "1 backends, 3 servers"
    decision: Decision | None  # None when the candidate is broken
    diff: str  # unified diff, live config -> candidate
    skipped: tuple[str, ...] = ()  # instances Consul lists that the catalog checks refuse
    broken: str | None = None  # why the candidate cannot be applied (template, haproxy -c)
    drift: str | None = None  # HAProxy differs from the file (read back through the runtime API)

    @property
    def exit_code(self) -> int:
        if self.broken is not None:
            return BROKEN
        return NO_CHANGE if self.decision is not None and self.decision.action is Action.NOTHING else CHANGES

    def as_dict(self) -> dict[str, object]:
        decision = self.decision
        return {
            "summary": self.summary,
            "action": decision.action.value if decision else None,
            "reason": decision.reason if decision else None,
            "operations": [describe(op) for op in decision.ops] if decision else [],
            "broken": self.broken,
            "drift": self.drift,
            "skipped": list(self.skipped),
            "diff": self.diff,
            "exit_code": self.exit_code,
        }

    def lines(self) -> list[str]:
        out = [f"Consul: {self.summary}"] + [f"  note: {note}" for note in self.skipped]
        if self.drift:
            out.append(f"HAProxy differs from the file: {self.drift}")
        if self.broken is not None:
            out.append(f"watch would keep the live config: {self.broken}")
        elif self.decision is not None and self.decision.action is Action.NOTHING:
            out.append(f"nothing to do: {self.decision.reason}")
        elif self.decision is not None and self.decision.action is Action.LIVE:
            out.append(f"live: {len(self.decision.ops)} runtime API operations, no reload ({self.decision.reason})")
            out += [f"  {describe(op)}" for op in self.decision.ops]
        elif self.decision is not None:
            out.append(f"reload: {self.decision.reason}")
        return out + ([self.diff.rstrip("\n")] if self.diff else [])


def make_plan(catalog: Catalog, config: WatchConfig, env: Mapping[str, str] | None = None) -> PlanReport:
    """Read, render, decide and validate; raises only for Consul or the live file (DiscoveryError).
    The three places are read and compared by :func:`~discovery.observe.views.observe`, as
    ``status`` and ``explain`` do."""
    observed = observe(
        catalog,
        services=config.services,
        output=config.output,
        template=config.template,
        values=config.values,
        tag=config.tag,
        discover=config.discover,
        runtime=RuntimeAPI(config.runtime_socket) if config.runtime_socket is not None else None,
        env=env,
        failover_dcs=tuple(config.failover_dcs),
        overrides_prefix=config.overrides_prefix,
        settling=True,  # an override's state not set yet is what watch sets live, not a drift to reload for
    )
    comparison, running, candidate = observed.comparison, observed.file_text, observed.desired_text
    skipped = comparison.notes
    if candidate is None:
        return PlanReport(comparison.summary, None, "", skipped, broken=comparison.broken)
    diff = "".join(
        difflib.unified_diff(
            (running or "").splitlines(keepends=True),
            candidate.splitlines(keepends=True),
            f"{config.output} (live)",
            f"{config.output} (candidate)",
        )
    )
    drift = comparison.drift if running is not None else None
    decision = decide(running, candidate, in_sync=drift is None, live_capable=config.runtime_socket is not None)
    if decision.action is not Action.NOTHING and config.validator is not None:
        try:
            validate_privately(candidate, config)
        except ValidationError as exc:
            broken = "\n".join([str(exc), *exc.details.splitlines()[1:]])
            return PlanReport(comparison.summary, None, diff, skipped, broken=broken, drift=drift)
    return PlanReport(comparison.summary, decision, diff, skipped, drift=drift)


def validate_privately(text: str, config: WatchConfig) -> None:
    """``haproxy -c`` on a copy in a private temporary directory: nothing is written beside the output."""
    assert config.validator is not None
    with tempfile.TemporaryDirectory(prefix="disco-plan-") as tmp:
        candidate = Path(tmp) / config.output.name
        candidate.write_text(text)
        config.validator.check(candidate, shown_as=config.output)
