"""Where the per-service watch's answers came from (the agent's cache, streaming), as metrics."""

from __future__ import annotations

from discovery.consul.watch import ConsulRequest
from discovery.observe.metrics import Metrics


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_answers_are_counted_by_cache_and_backend():
    m = Metrics(("web",), "0")
    m(ConsulRequest("/v1/health/service", "changed", "HIT", "blocking-query"))
    m(ConsulRequest("/v1/health/service", "unchanged", "HIT", "blocking-query"))
    m(ConsulRequest("/v1/health/service", "changed", "MISS", ""))
    sources = "disco_consul_answer_sources_total"
    assert value(m, sources, cache="hit", backend="blocking-query") == 2
    assert value(m, sources, cache="miss", backend="none") == 1
    assert value(m, "disco_consul_requests_total", endpoint="/v1/health/service", result="changed") == 2


def test_answers_without_those_headers_add_no_series():
    m = Metrics(("web",), "0")
    m(ConsulRequest("/v1/health/state/any", "changed"))
    assert value(m, "disco_consul_answer_sources_total", cache="none", backend="none") is None
