"""Prometheus metrics of one watcher: an event subscriber with its own registry (no globals).

Names follow Prometheus' conventions: base units (``_seconds``), counters end in
``_total``, labels of bounded cardinality only (endpoint paths without the service, the
services the watcher was given, reasons, methods, results; never an instance ID).

Everything is derived from the pipeline's events (:mod:`discovery.pipeline.events`):

- an apply's method is the decision (``live``, ``reload``); a live decision that ends in
  a reload counts as one failed live apply and one successful reload;
- change-to-applied runs from the first change seen after the last apply (the time the
  watch got Consul's answer) to the next apply that changed something.
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from ..pipeline.decide import Action
from ..pipeline.events import (
    Applied,
    ChangeSeen,
    ConsulRequest,
    Counted,
    Decided,
    Event,
    Failed,
    FailoverReached,
    Held,
    OverridesInForce,
    Released,
    Rendered,
    Validated,
)
from ..pipeline.execute import Outcome
from ..state.convert import STATUSES
from ..state.overrides import KINDS as OVERRIDE_KINDS

#: Seconds: from a millisecond (a live apply) to a minute (a reload retried with backoff).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LEFT_OUT_REASONS = ("not_passing", "maintenance", "refused", "duplicate")


class Metrics:
    """Subscribe an instance to a watcher's bus; serve ``registry`` (``generate_latest(registry)``)."""

    def __init__(
        self,
        services: tuple[str, ...],
        version: str,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        stale_reasks: Callable[[], int] | None = None,
    ) -> None:
        """``stale_reasks``: how many ``?stale`` answers the Consul client asked again (read at each scrape)."""
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.clock, self.wall = clock, wall
        r = self.registry
        if stale_reasks is not None:
            r.register(_StaleReasks(stale_reasks))
        self.requests = Counter(
            "disco_consul_requests",
            "Answers from Consul by endpoint and result (changed, unchanged, error).",
            ["endpoint", "result"],
            registry=r,
        )
        self.answer_sources = Counter(
            "disco_consul_answer_sources",
            "Answers of the per-service watch by the agent's X-Cache (hit, miss) and "
            "X-Consul-Query-Backend (blocking-query, streaming); none: the header was absent.",
            ["cache", "backend"],
            registry=r,
        )
        self.consul_up = Gauge(
            "disco_consul_up", "1 when Consul answered the last request, 0 when it failed.", registry=r
        )
        self.instances = Gauge(
            "disco_catalog_instances",
            "Instances Consul lists per service and status (passing, warning, critical, maintenance).",
            ["service", "status"],
            registry=r,
        )
        self.servers = Gauge(
            "disco_backend_servers", "Servers routed per backend, as last applied.", ["backend"], registry=r
        )
        self.left_out = Gauge(
            "disco_instances_left_out",
            "Instances Consul lists that are not routed, per service and reason.",
            ["service", "reason"],
            registry=r,
        )
        self.applies = Counter(
            "disco_applies",
            "Applies by method (live, reload, write) and result (success, failure).",
            ["method", "result"],
            registry=r,
        )
        self.render_seconds = Histogram(
            "disco_render_duration_seconds", "Time to render the template.", buckets=BUCKETS, registry=r
        )
        self.validate_seconds = Histogram(
            "disco_validate_duration_seconds", "Time haproxy -c took on a candidate.", buckets=BUCKETS, registry=r
        )
        self.apply_seconds = Histogram(
            "disco_apply_duration_seconds",
            "Time to carry out a decision (install, then the runtime API or a reload).",
            ["method"],
            buckets=BUCKETS,
            registry=r,
        )
        self.convergence = Histogram(
            "disco_change_to_applied_seconds",
            "From a change seen in Consul to HAProxy running it.",
            buckets=BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "disco_last_apply_success_timestamp_seconds",
            "When HAProxy was last known to run the newest config (Unix time).",
            registry=r,
        )
        self.pending = Gauge(
            "disco_pending",
            "1 while a newer state than the one HAProxy runs is waiting (quiescence, a gate hold, a retry).",
            registry=r,
        )
        self.held = Gauge(
            "disco_gate_held", "1 while the sanity gate holds back a change of the service.", ["service"], registry=r
        )
        self.overrides = Gauge(
            "disco_overrides_in_force",
            "Operator overrides (Consul KV documents) in force, by kind (drain, disable, weight, disable_routes).",
            ["kind"],
            registry=r,
        )
        self.overrides_malformed = Gauge(
            "disco_overrides_malformed",
            "Override documents ignored as malformed (each logged with its key).",
            registry=r,
        )
        self.failover_up = Gauge(
            "disco_failover_dc_up",
            "1 while a failover datacenter answers for every service, 0 while it does not (WAN down).",
            ["dc"],
            registry=r,
        )
        self.failover_instances = Gauge(
            "disco_failover_instances",
            "Instances a failover datacenter lends as backup servers (the last known while it does not answer).",
            ["dc"],
            registry=r,
        )
        for kind in OVERRIDE_KINDS:
            self.overrides.labels(kind)
        Info("disco_build", "disco's version.", registry=r).info(
            {"version": version, "python": platform.python_version()}
        )
        for service in services:
            self.held.labels(service).set(0)
            for status in STATUSES:
                self.instances.labels(service, status)
            for reason in LEFT_OUT_REASONS:
                self.left_out.labels(service, reason)
        for method in ("live", "reload"):
            self.apply_seconds.labels(method)
            for result in ("success", "failure"):
                self.applies.labels(method, result)
        self._action: Action | None = None
        self._first_change: float | None = None
        self._held: set[str] = set()
        self._explicit = frozenset(services)
        self._labelled: set[str] = set(services)  # services with label series (discovered ones come and go)
        self._server_counts: dict[str, int] = {}  # the backend servers gauge as last set

    def __call__(self, event: Event) -> None:
        match event:
            case ConsulRequest(endpoint, result, cache, backend):
                self.requests.labels(endpoint, result).inc()
                if cache or backend:
                    self.answer_sources.labels(cache.lower() or "none", backend or "none").inc()
                self.consul_up.set(0 if result == "error" else 1)
            case Counted(service, statuses, left_out):
                self._labelled.add(service)
                for status, count in statuses:
                    self.instances.labels(service, status).set(count)
                reasons = dict(left_out)
                for reason in LEFT_OUT_REASONS:
                    self.left_out.labels(service, reason).set(reasons.get(reason, 0))
            case ChangeSeen(_, _, seen_at):
                if self._first_change is None:
                    self._first_change = seen_at or self.clock()
                self.pending.set(1)
            case Held(service):
                self._held.add(service)
                self.held.labels(service).set(1)
            case Released(service):
                self._held.discard(service)
                self.held.labels(service).set(0)
            case Rendered(_, _, seconds):
                self.render_seconds.observe(seconds)
            case Validated(seconds, _):
                self.validate_seconds.observe(seconds)
            case Decided(_, decision):
                self._action = decision.action
            case Failed(stage):
                if stage == "apply" and self._action in (Action.LIVE, Action.RELOAD):
                    self.applies.labels(self._action.value, "failure").inc()
            case Applied():
                self._applied(event)
            case FailoverReached(dc, up, count):
                self.failover_up.labels(dc).set(1 if up else 0)
                self.failover_instances.labels(dc).set(count)
            case OverridesInForce(kinds, malformed):
                for kind, count in kinds:
                    self.overrides.labels(kind).set(count)
                self.overrides_malformed.set(malformed)

    def _applied(self, event: Applied) -> None:
        outcome = Outcome(event.outcome)
        method = {Outcome.LIVE: "live", Outcome.WRITTEN: "write"}.get(outcome, "reload")
        if outcome is not Outcome.UNCHANGED:
            if self._action is Action.LIVE and outcome is not Outcome.LIVE:
                self.applies.labels("live", "failure").inc()  # the runtime API failed: a reload repaired it
            self.applies.labels(method, "failure" if outcome is Outcome.ROLLED_BACK else "success").inc()
            self.apply_seconds.labels(method).observe(event.seconds)
        if outcome is Outcome.ROLLED_BACK or not event.in_sync:
            return
        for backend, count in event.servers:
            if self._server_counts.get(backend) != count:  # 2,500 label lookups a change were 5 ms of CPU
                self.servers.labels(backend).set(count)
                self._server_counts[backend] = count
        self.last_success.set(self.wall())
        if self._first_change is not None and outcome is not Outcome.UNCHANGED:
            self.convergence.observe(max(0.0, self.clock() - self._first_change))
        self._first_change = None
        self.pending.set(1 if self._held else 0)
        self._drop_series({backend for backend, _ in event.servers})

    def _drop_series(self, applied: set[str]) -> None:
        """A discovered service that is no longer in what HAProxy runs loses its label series, so
        services that come and go (anyone may register one with a route tag) do not pile up."""
        for service in self._labelled - applied - self._explicit - self._held:
            self._server_counts.pop(service, None)
            for metric, labels in [
                *((self.instances, (service, status)) for status in STATUSES),
                *((self.left_out, (service, reason)) for reason in LEFT_OUT_REASONS),
                (self.held, (service,)),
                (self.servers, (service,)),
            ]:
                with contextlib.suppress(KeyError):  # a series never set (prometheus_client < 0.22 raises)
                    metric.remove(*labels)
        self._labelled = applied | self._explicit | self._held


class _StaleReasks(Collector):
    """A counter kept by the Consul client, not derived from events: read when scraped."""

    def __init__(self, read: Callable[[], int]) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        return [
            CounterMetricFamily(
                "disco_consul_stale_reasks",
                "--stale answers older than --max-stale, asked again with the default consistency.",
                value=self.read(),
            )
        ]
