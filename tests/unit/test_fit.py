"""Which watch fits under the agent's connection limit (pure: /v1/agent/self answers as data)."""

from __future__ import annotations

import pytest

from discovery.consul.fit import AgentLimits, agent_limits, choose_mode, polls_allowed
from discovery.errors import ConfigError


def agent_self(limit=200, cache=True):
    return {"Config": {"Version": "1.8.7"}, "DebugConfig": {"HTTPMaxConnsPerClient": limit, "HTTPUseCache": cache}}


def test_the_limit_and_cache_setting_are_read_from_debug_config():
    assert agent_limits(agent_self(4096, True)) == AgentLimits(4096, True)


@pytest.mark.parametrize(
    "answer", [{}, {"DebugConfig": None}, {"DebugConfig": {"HTTPMaxConnsPerClient": "200"}}, [], None]
)
def test_an_answer_without_the_limit_leaves_it_unknown_with_a_reason(answer):
    limits = agent_limits(answer)
    assert not limits.known and limits.why


def test_headroom_is_a_tenth_of_the_limit_and_at_least_sixteen():
    assert polls_allowed(200) == 180
    assert polls_allowed(40) == 24
    assert polls_allowed(4096) == 4096 - 410
    assert polls_allowed(10) == 0


def test_auto_watches_per_service_when_the_services_fit_with_headroom():
    choice = choose_mode("auto", 180, agent_limits(agent_self(200)), stale=True)
    assert (choice.mode, choice.connections, choice.cached) == ("service", 180, True)
    assert "180 long polls fit" in choice.reason


def test_default_reads_are_not_cached_reads():
    """The agent's cache reads with ?stale (a follower lags the leader by up to a heartbeat): only
    --stale watchers ask with ?cached."""
    assert not choose_mode("auto", 3, agent_limits(agent_self(200))).cached
    assert not choose_mode("service", 3, agent_limits(agent_self(200))).cached
    assert choose_mode("service", 3, agent_limits(agent_self(200)), stale=True).cached


def test_auto_follows_the_catalog_when_they_would_not_fit():
    choice = choose_mode("auto", 181, agent_limits(agent_self(200)))
    assert choice.mode == "catalog" and choice.blocking_queries == 2
    assert "would not fit" in choice.reason and "200 connections per client" in choice.reason


def test_auto_follows_the_catalog_when_the_limit_is_unknown():
    choice = choose_mode("auto", 3, AgentLimits(why="reading /v1/agent/self needs agent:read"))
    assert choice.mode == "catalog" and "agent:read" in choice.reason


def test_a_limit_of_zero_means_no_limit():
    assert choose_mode("auto", 100_000, agent_limits(agent_self(0))).mode == "service"


def test_no_cached_reads_when_the_agent_does_not_serve_them():
    assert not choose_mode("auto", 3, agent_limits(agent_self(200, False))).cached


def test_explicit_service_mode_beyond_the_limit_is_refused_at_start():
    with pytest.raises(ConfigError, match=r"needs 500 long polls.*http_max_conns_per_client"):
        choose_mode("service", 500, agent_limits(agent_self(200)))


def test_explicit_service_mode_with_an_unknown_limit_is_trusted():
    choice = choose_mode("service", 500, AgentLimits(why="denied"))
    assert choice.mode == "service" and choice.connections == 500 and "unknown" in choice.reason


def test_catalog_and_discover_do_not_depend_on_the_agent():
    assert choose_mode("catalog", 3, AgentLimits(4096)).mode == "catalog"
    assert choose_mode("service", 3, AgentLimits(4096), discover=True).mode == "catalog"


class StartingAgent:
    """An agent that does not answer /v1/agent/self for its first ``down`` asks (it starts with disco)."""

    def __init__(self, down: int, limits: AgentLimits, stale: bool = True):
        self.down, self.limits, self.asked, self.stale = down, limits, 0, stale

    def agent_limits(self):
        self.asked += 1
        if self.asked <= self.down:
            return AgentLimits(why="Consul at http://127.0.0.1:8500 is unavailable", unreachable=True)
        return self.limits


def watcher(catalog, services, mode="auto"):
    from pathlib import Path

    from discovery.haproxy.render import DEFAULT_TEMPLATE
    from discovery.pipeline.watcher import WatchConfig, Watcher

    config = WatchConfig(services=services, template=DEFAULT_TEMPLATE, output=Path("/nonexistent"), watch_mode=mode)
    return Watcher(catalog, config, dry_run=True)


def test_an_agent_still_starting_is_asked_again_before_choosing():
    catalog = StartingAgent(2, AgentLimits(200, True))
    choice = watcher(catalog, ("web", "api")).choose_mode()
    assert catalog.asked == 3 and choice.mode == "service" and choice.cached


def test_a_refused_agent_self_is_not_asked_again_and_auto_follows_the_catalog():
    catalog = StartingAgent(0, AgentLimits(why="the token may not read /v1/agent/self, which needs agent:read"))
    choice = watcher(catalog, ("web",)).choose_mode()
    assert catalog.asked == 1 and choice.mode == "catalog" and "agent:read" in choice.reason


def test_the_other_long_polls_count_against_the_limit():
    """Operator overrides and failover datacenters hold long polls of their own on the same agent."""
    assert choose_mode("auto", 170, AgentLimits(200), others=10).mode == "service"
    choice = choose_mode("auto", 170, AgentLimits(200), others=11)
    assert choice.mode == "catalog" and "181 long polls (170 services, 11 other watches)" in choice.reason
