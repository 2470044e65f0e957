"""`disco watch --discover`: which services are followed (pure), the pipeline's followed set, the
default backend, the settings, and a whole dry-run pass on an empty catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.config import resolve, watch_config
from discovery.consul.discover import DEREGISTERED, NO_ROUTE_TAG, Gone, Listed, discovered, gone_reason, read_followed
from discovery.errors import ConfigError
from discovery.haproxy.render import DEFAULT_TEMPLATE, Renderer
from discovery.observe.plan import read_state
from discovery.pipeline.events import ChangeSeen, Counted, Held, Released
from discovery.pipeline.followed import Followed
from discovery.pipeline.gatekeeper import Gatekeeper, LeaderStatus
from discovery.pipeline.watcher import WatchConfig, Watcher
from discovery.state.gate import GatePolicy
from discovery.state.model import DesiredState, Instance, Route, Service
from discovery.state.routing import table

from .test_catalog_watch import Catalog, entry

LIST = {
    "consul": [],
    "web": ["v1"],
    "api": ["urlprefix-/api strip=/api", "v2"],
    "shop": ["urlprefix-shop.example.com/"],
    "redis": ["urlprefix-:6379 proto=tcp"],
    "db": ["primary"],
    "bad name": ["urlprefix-/x"],
    "odd": ["urlprefix-/x allow=10.0.0.0/8"],
}


def test_route_tagged_and_explicit_services_are_followed_and_bad_names_refused():
    found = discovered(LIST, ["web", "ghost"])
    assert found.followed == ("api", "ghost", "odd", "redis", "shop", "web")  # a refused route is still a route tag
    assert list(found.refused) == ["bad name"] and "has characters" in found.refused["bad name"]
    assert discovered({}, []).followed == ()
    assert discovered({"x": None, "y": "urlprefix-/y"}, []).followed == ()  # malformed tag lists: nothing
    assert discovered(LIST, [], is_route=lambda t: t == "primary").followed == ("db",)


def test_with_tag_only_services_with_an_instance_carrying_it_are_discovered():
    """--tag routes only the instances carrying the tag: a route-tagged service none of whose
    instances carries it would be a backend with no server, so it is not followed."""
    assert discovered(LIST, ["web"], tag="v2").followed == ("api", "web")  # web: named, followed anyway
    assert gone_reason("shop", LIST, "v2") == "no longer has an instance tagged v2"
    assert gone_reason("db", LIST, "v2") == NO_ROUTE_TAG and gone_reason("gone", LIST, "v2") == DEREGISTERED


def test_read_followed_puts_explicit_services_first():
    catalog = Catalog()
    catalog.services = LIST
    assert read_followed(catalog, ["web", "db"])[0] == ("web", "db", "api", "odd", "redis", "shop")


def service(name: str, *ids: str, routes: tuple[Route, ...] = ()) -> Service:
    return Service(name, tuple(Instance(id=i, name=i, node="n1", address="10.0.0.1", port=80) for i in ids), routes)


def test_followed_set_completes_on_the_list_and_renders_in_a_stable_order():
    followed = Followed(["web"], discover=True)
    forgotten, events = [], []

    def leave(name: str, deregistered: bool) -> bool:
        forgotten.append((name, deregistered))
        return True

    assert not followed.complete
    followed.views["web"] = service("web", "w1")
    assert not followed.complete  # the catalog list not read yet
    assert followed.apply(Listed(("b", "web", "a")), leave, events.append)
    assert not followed.complete
    followed.views["b"], followed.views["a"] = service("b", "b1"), service("a")
    assert followed.complete
    state = followed.state()
    assert [s.name for s in state.services] == ["web", "a", "b"] and state.discovered == {"a", "b"}
    assert followed.apply(Gone("b", DEREGISTERED, 5.0), leave, events.append)
    assert forgotten == [("b", True)] and events[-1] == ChangeSeen("b", 0, 5.0)
    assert isinstance(events[0], Counted) and all(n == 0 for _, n in events[0].statuses)
    assert followed.apply(Gone("a", NO_ROUTE_TAG), leave, events.append) and forgotten[-1] == ("a", False)
    assert followed.apply(Gone("web", "no longer has an instance tagged v2"), leave, events.append)
    assert forgotten[-1] == ("web", True)  # its routed instances went: gated
    assert not followed.apply(Gone("never", DEREGISTERED), leave, events.append)
    empty = Followed([], discover=True)
    assert not empty.complete
    empty.apply(Listed(()), leave, events.append)
    assert empty.complete and empty.state() == DesiredState()


def test_a_service_whose_route_tag_is_taken_off_leaves_at_once_and_ends_its_hold():
    views, events = {"a": service("a", "a1")}, []
    gate = Gatekeeper(GatePolicy(), views, events.append, lambda: 0.0)
    assert not gate.admit(service("a"))  # every instance gone: held
    assert gate.leave("a", gated=False)
    assert "a" not in views and not gate.holds and not gate.probe_wanted.is_set()


def test_a_deregistered_service_is_gated_like_its_last_instance_going():
    """A Consul that answers an empty catalog list while it recovers must not drop every
    discovered backend: a service that leaves the catalog is held like one whose last instance
    went, and dropped (not left as an empty backend) when the hold is let through."""
    now = [0.0]
    views, events = {"a": service("a", "a1"), "b": service("b")}, []
    gate = Gatekeeper(GatePolicy(grace=30.0, when_empty="keep"), views, events.append, lambda: now[0])
    assert not gate.leave("a", gated=True)  # held, the probe asked
    assert views["a"] == service("a", "a1") and gate.probe_wanted.is_set()
    assert not gate.on_leader(LeaderStatus(healthy=False))
    assert "a" in views and isinstance(events[-1], Held) and events[-1].reason == "Consul has no leader"
    assert not gate.on_leader(LeaderStatus(healthy=True))  # healthy, but keep: held for the grace time
    assert events[-1].reason == "every instance is gone" and "a" in views
    now[0] = 30.0
    assert gate.release_expired()
    assert "a" not in views and not gate.holds and not gate.probe_wanted.is_set()
    assert gate.leave("b", gated=True) and "b" not in views  # no instance to protect: at once

    views["c"] = service("c", "c1")
    empty = Gatekeeper(GatePolicy(when_empty="empty"), views, events.append, lambda: 0.0)
    assert not empty.leave("c", gated=True)
    assert empty.on_leader(LeaderStatus(healthy=True)) and "c" not in views


def test_a_service_back_in_the_catalog_ends_the_hold_on_its_removal():
    views, events = {"a": service("a", "a1")}, []
    gate = Gatekeeper(GatePolicy(), views, events.append, lambda: 0.0)
    assert not gate.leave("a", gated=True)
    assert not gate.on_leader(LeaderStatus(healthy=False))
    assert gate.admit(service("a", "a1", "a2"))  # listed and read again
    assert views["a"] == service("a", "a1", "a2") and not gate.holds
    assert isinstance(events[-1], Released) and events[-1].ended


def test_a_discovered_service_is_never_the_default_backend():
    api = service("api", "a1", routes=(Route(path="/api"),))
    web = service("web", "w1")
    assert table([api, web], {}, discovered={"api"}).default_backend == "web"
    assert table([api], {}, discovered={"api"}).default_backend is None
    assert table([api, web]).default_backend == "api"  # without --discover, as before
    text = Renderer(DEFAULT_TEMPLATE).render(DesiredState((api,), frozenset({"api"})), {}, {})
    assert "default_backend" not in text and "backend api" in text


def settings(tmp_path: Path, file: str = "", **flags: object) -> dict[str, object]:
    path = tmp_path / "watch.toml"
    path.write_text(file + 'output = "/tmp/x.cfg"\ncheck-cmd = "true"\n')
    return resolve(flags, path)


def test_discover_needs_no_service_and_not_the_per_service_watch(tmp_path: Path):
    config = watch_config(settings(tmp_path, "discover = true\n"))
    assert config.discover and config.services == ()
    assert watch_config(settings(tmp_path, 'service = ["web"]\n', discover=True)).services == ("web",)
    with pytest.raises(ConfigError, match="^missing --service or --discover"):
        watch_config(settings(tmp_path))
    with pytest.raises(ConfigError, match="cannot go with --watch-mode service"):
        watch_config(settings(tmp_path, 'watch-mode = "service"\n', discover=True))


def test_plan_reads_the_discovered_services_once():
    catalog = Catalog()
    catalog.services = {"web": [], "api": ["urlprefix-/api"], "bad name": ["urlprefix-/b"]}
    catalog.instances["api"] = [entry("api-1", 90)]
    state, notes = read_state(catalog, ("web",), None, discover=True)
    assert [s.name for s in state.services] == ["web", "api"] and state.discovered == {"api"}
    assert any("discover: service skipped: service name 'bad name'" in n for n in notes)


class Leader(Catalog):
    def leader(self):
        return "127.0.0.1:8300"


def test_an_empty_catalog_is_a_complete_state_with_no_backend(tmp_path: Path):
    catalog = Leader()
    catalog.services, catalog.checks = {"consul": []}, []
    printed: list[str] = []
    config = WatchConfig(
        services=(),
        template=DEFAULT_TEMPLATE,
        output=tmp_path / "haproxy.cfg",
        validator=None,
        discover=True,
        once_timeout=10,
    )
    watcher = Watcher(catalog, config, dry_run=True, output=printed.append)
    assert watcher.blocking_queries == 2
    watcher.run(once=True)
    assert "frontend http" in printed[0] and "backend " not in printed[0]
