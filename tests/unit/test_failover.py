"""Failover datacenters: names, merging as backups (never touching local instances), the gate on their views."""

from __future__ import annotations

import pytest

from discovery.consul.failover_watch import FailoverReach, FailoverUpdate, check_datacenters
from discovery.errors import CatalogUnavailable, ConfigError
from discovery.haproxy.render import DEFAULT_TEMPLATE, Renderer
from discovery.pipeline.events import FailoverReached
from discovery.pipeline.failover import FailoverStage
from discovery.state.convert import convert
from discovery.state.failover import check_dc, is_failover, merge
from discovery.state.gate import GatePolicy
from discovery.state.model import DesiredState


def entry(sid, port=8080, tags=()):
    return {
        "Node": {"Node": "n1", "Address": "10.0.0.1"},
        "Service": {"ID": sid, "Address": "10.0.0.1", "Port": port, "Tags": list(tags), "Meta": {}},
        "Checks": [],
    }


def service(*ids):
    return convert("web", [entry(i) for i in ids]).service


@pytest.mark.parametrize(
    "name, ok",
    [
        ("dc2", True),
        ("eu-west_1", True),
        ("", False),
        ("dc2:x", False),
        ("dc.2", False),
        ("dc2\n", False),
        ("-dc", False),
        (3, False),
    ],
)
def test_datacenter_names(name, ok):
    assert (check_dc(name) is None) is ok


def test_failover_instances_are_appended_as_backups_in_order_and_never_replace_local_ones():
    local = service("w1", "dc2:r1")  # a local ID that looks like a failover name
    notes: list[str] = []
    merged = merge(local, {"dc2": service("r1", "r2"), "dc3": service("r1")}, ("dc2", "dc3"), notes)
    assert [(i.name, i.backup) for i in merged.instances] == [
        ("dc2:r1", False),
        ("w1", False),
        ("dc2:r2", True),
        ("dc3:r1", True),
    ]
    assert notes == ["web: failover instance 'r1' of dc2 left out: its name 'dc2:r1' is taken"]
    assert merge(local, {"dc2": service()}, ("dc2",), []) is local
    assert is_failover("dc3:r1", ("dc2", "dc3")) == "dc3" and is_failover("w1", ("dc2",)) is None


def test_the_rendered_backend_lists_them_as_backup_servers():
    merged = merge(service("w1"), {"dc2": service("r1")}, ("dc2",), [])
    text = Renderer(DEFAULT_TEMPLATE).render(DesiredState((merged,)), {"frontend_port": "80", "stats_port": "81"})
    assert "    server dc2:r1 10.0.0.1:8080 check inter 1s fall 2 rise 1 backup\n" in text


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def test_an_empty_answer_from_a_failover_dc_is_held_and_an_unreachable_one_changes_nothing():
    clock, events = Clock(), []
    stage = FailoverStage(("dc2",), GatePolicy(grace=30), events.append, clock)
    stage.follow("web")
    state = DesiredState((service("w1"),))
    assert stage.receive(FailoverUpdate(service("r1"), "dc2", 5))
    assert [i.name for i in stage.merge(state).services[0].instances] == ["w1", "dc2:r1"]
    assert not stage.receive(FailoverUpdate(service(), "dc2", 6))  # every instance gone at once: held
    assert [i.name for i in stage.merge(state).services[0].instances] == ["w1", "dc2:r1"]
    assert not stage.receive(FailoverReach("web", "dc2", False, "no answer"))
    assert events[-1] == FailoverReached("dc2", False, 1)
    clock.now = 31
    assert stage.release_expired()
    assert [i.name for i in stage.merge(state).services[0].instances] == ["w1"]
    assert stage.local_only({"web": ("w1", "dc2:r1")}) == {"web": ("w1",)}


def test_the_local_backend_is_never_emptied_by_a_failover_answer():
    stage = FailoverStage(("dc2",), GatePolicy(), lambda e: None, Clock())
    stage.follow("web")
    stage.receive(FailoverUpdate(service("r1", "r2"), "dc2", 5))
    merged = stage.merge(DesiredState((service("w1", "w2"),)))
    assert {i.name for i in merged.services[0].instances if not i.backup} == {"w1", "w2"}


class DCs:
    def __init__(self, known=None, error=None):
        self.known, self.error = known, error

    def datacenters(self):
        if self.error:
            raise self.error
        return self.known


def test_an_unknown_datacenter_is_a_config_error_and_an_unreachable_consul_is_not():
    check_datacenters(DCs(["dc1", "dc2"]), ("dc2",))
    with pytest.raises(ConfigError, match="--failover-dc dc9: Consul knows no such datacenter"):
        check_datacenters(DCs(["dc1", "dc2"]), ("dc2", "dc9"))
    check_datacenters(DCs(error=CatalogUnavailable("down")), ("dc9",))


class Remote:
    """A failover datacenter that answers, fails once (the WAN link), then answers from a lower index."""

    def __init__(self, stop):
        self.stop, self.asked = stop, []

    def health_service_dc(self, service, dc, *, index, wait):
        self.asked.append(index)
        if len(self.asked) == 2:
            raise CatalogUnavailable("500 rpc error")
        if len(self.asked) == 4:
            self.stop.set()
        return (13, [entry("r1")]) if len(self.asked) == 1 else (4, [])


def test_the_wan_link_down_is_reported_once_and_the_first_query_after_it_does_not_block():
    import threading

    from discovery.consul.failover_watch import FailoverWatch
    from discovery.consul.watch import WatchTiming

    stop = threading.Event()
    remote, got = Remote(stop), []
    timing = WatchTiming(min_interval=0, backoff_min=0.001, backoff_max=0.001)
    FailoverWatch(remote, "web", "dc2", got.append, stop, timing=timing).run()
    assert remote.asked == [0, 13, 0, 0]  # blocking on 13; after the failure, not blocking
    kinds = [(m.ok,) if isinstance(m, FailoverReach) else (m.index, len(m.service.instances)) for m in got]
    assert kinds == [(13, 1), (True,), (False,), (4, 0), (True,)]


def test_config_file_keys_and_flags(tmp_path):
    from discovery.config import failover_dcs_of, overrides_prefix_of, resolve

    path = tmp_path / "watch.toml"
    path.write_text('service = ["web"]\nfailover-dc = ["dc2", "dc3", "dc2"]\noverrides_prefix = "ops/disco/"\n')
    opts = resolve({}, path)
    assert failover_dcs_of(opts) == ("dc2", "dc3") and overrides_prefix_of(opts) == "ops/disco/"
    opts = resolve({"failover-dc": ["dc4"], "overrides-prefix": ""}, path)  # flags win; "" turns overrides off
    assert failover_dcs_of(opts) == ("dc4",) and overrides_prefix_of(opts) == ""
    assert overrides_prefix_of(resolve({"service": ["web"]}, None)) == "disco/overrides/"
    with pytest.raises(ConfigError, match="invalid --failover-dc"):
        failover_dcs_of({"service": ("web",), "failover-dc": ("dc 2",)})
    with pytest.raises(ConfigError, match="give --service or --discover"):
        failover_dcs_of({"service": (), "failover-dc": ("dc2",)})
    assert failover_dcs_of({"service": (), "discover": True, "failover-dc": ("dc2",)}) == ("dc2",)
