"""The catalog-wide watch: which services a change touches (pure), and the loop on a scripted catalog."""

from __future__ import annotations

import json
import threading

from discovery.consul.catalog_watch import CatalogWatch, check_digest, dirty_from_service_list, dirty_services
from discovery.consul.watch import Update, WatchTiming


def chk(node, check, service="", sid="", status="passing", tags=()):
    return {
        "Node": node,
        "CheckID": check,
        "ServiceName": service,
        "ServiceID": sid,
        "Status": status,
        "ServiceTags": list(tags),
        "Output": "anything",
    }


BASE = [
    chk("n1", "serfHealth"),
    chk("n1", "service:web-1", "web", "web-1"),
    chk("n2", "serfHealth"),
    chk("n2", "service:api-1", "api", "api-1"),
]
NODES = {"n1": {"web"}, "n2": {"api"}}


def test_first_answer_touches_everything_watched():
    assert dirty_services(None, check_digest(BASE), ["web", "api"], {}) == {"web", "api"}


def test_status_change_touches_only_its_service():
    new = [*BASE[:3], chk("n2", "service:api-1", "api", "api-1", status="critical")]
    assert dirty_services(check_digest(BASE), check_digest(new), ["web", "api"], NODES) == {"api"}


def test_output_changes_are_not_changes():
    new = [dict(c, Output="other") for c in BASE]
    assert dirty_services(check_digest(BASE), check_digest(new), ["web", "api"], NODES) == set()


def test_new_instance_and_unwatched_services():
    new = [*BASE, chk("n3", "service:web-2", "web", "web-2"), chk("n3", "service:db-1", "db", "db-1")]
    assert dirty_services(check_digest(BASE), check_digest(new), ["web", "api"], NODES) == {"web"}


def test_node_check_touches_the_services_on_that_node():
    new = [BASE[0], BASE[1], chk("n2", "serfHealth", status="critical"), BASE[3]]
    assert dirty_services(check_digest(BASE), check_digest(new), ["web", "api"], NODES) == {"api"}


def test_service_list_changes():
    old = {"web": ["a"], "api": []}
    assert dirty_from_service_list(old, {"web": ["a", "b"], "api": []}, ["web", "api"]) == {"web"}
    assert dirty_from_service_list(old, {"web": ["a"]}, ["web", "api"]) == {"api"}
    assert dirty_from_service_list(old, dict(old), ["web", "api"]) == set()


def entry(sid, port):
    return {
        "Node": {"Node": "n1", "Address": "10.0.0.1"},
        "Service": {"ID": sid, "Address": "10.0.0.1", "Port": port, "Tags": [], "Meta": {}},
        "Checks": [],
    }


class Catalog:
    """Scripted Consul: checks and service list move when told to; counts per-service reads."""

    def __init__(self):
        self.lock = threading.Condition()
        self.index = 10  # Raft index
        self.table = {"checks": 10, "services": 10}  # each endpoint answers with its table's index
        self.checks = list(BASE)
        self.services = {"web": [], "api": []}
        self.instances = {"web": [entry("web-1", 80)], "api": [entry("api-1", 90)]}
        self.reads: list[str] = []

    def change(self, **kw):
        """Like a registration: the tables it writes move to the new Raft index."""
        with self.lock:
            self.index += 1
            for k, v in kw.items():
                setattr(self, k, v)
                self.table[k] = self.index
            self.table["services"] = self.index
            self.lock.notify_all()

    def _block(self, table, index, wait):
        with self.lock:
            self.lock.wait_for(lambda: self.table[table] > index, timeout=wait)
            return self.table[table]

    def health_state_text(self, *, index, wait):
        # indented, as a dev agent answers; compact answers are covered in test_check_diff.py
        return self._block("checks", index, wait), json.dumps(list(self.checks), indent=4)

    def checks_index(self):
        with self.lock:
            return self.table["checks"]

    def catalog_services(self, *, index, wait):
        return self._block("services", index, wait), dict(self.services)

    def health_service(self, name, *, tag, index, wait, passing):
        self.reads.append(name)
        return self.index, list(self.instances.get(name, []))

    def interrupt(self):
        pass  # blocked reads return within their wait


def test_loop_reads_only_the_service_that_changed():
    catalog, updates, stop = Catalog(), [], threading.Event()
    watch = CatalogWatch(
        catalog, ["web", "api"], updates.append, stop, timing=WatchTiming(wait=2, min_interval=0), explain_within=0.2
    )
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(updates) == 2)
        catalog.reads.clear()
        catalog.instances["web"] = [entry("web-1", 80), entry("web-2", 81)]
        catalog.change(checks=[*BASE, chk("n1", "service:web-2", "web", "web-2")])
        wait_for(lambda: len(updates) == 3)
        assert updates[-1].service.name == "web" and len(updates[-1].service.instances) == 2
        assert set(catalog.reads) == {"web"}

        # An instance without checks: only the service index moves; everything is read again, once.
        catalog.reads.clear()
        catalog.instances["api"] = [entry("api-1", 90), entry("api-2", 91)]
        catalog.change()
        wait_for(lambda: len(updates) == 4)
        assert updates[-1].service.name == "api"
        assert sorted(catalog.reads) == ["api", "web"]
    finally:
        stop.set()
        catalog.change(checks=list(BASE))
        thread.join(5)


def wait_for(predicate, timeout=5.0):
    event = threading.Event()
    deadline = 0.0
    while not predicate():
        event.wait(0.01)
        deadline += 0.01
        assert deadline < timeout, "condition not met in time"


def test_discover_follows_route_tagged_services_as_they_come_and_go(caplog):
    from discovery.consul.discover import DEREGISTERED, NO_ROUTE_TAG, Gone, Listed

    catalog, seen, stop = Catalog(), [], threading.Event()
    catalog.services = {"web": []}  # explicit, no route tag
    watch = CatalogWatch(
        catalog,
        ["web"],
        seen.append,
        stop,
        timing=WatchTiming(wait=2, min_interval=0),
        explain_within=0.2,
        discover=True,
    )
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()

    def names(kind):
        return [m.service.name if hasattr(m.service, "name") else m.service for m in seen if isinstance(m, kind)]

    try:
        wait_for(lambda: names(Update) == ["web"])
        assert [m for m in seen if isinstance(m, Listed)] == [Listed(("web",))]
        catalog.instances["shop"] = [entry("shop-1", 82)]
        catalog.change(
            services={
                "web": [],
                "shop": ["urlprefix-/shop strip=/shop"],
                "db": ["primary"],
                "bad name": ["urlprefix-/x"],
            }
        )
        wait_for(lambda: names(Update) == ["web", "shop"])  # read at once; db has no route tag
        assert seen[-2] == Listed(("shop", "web")) and watch.services == ("shop", "web")
        assert caplog.text.count("'bad name' has characters") == 1
        catalog.change(
            services={
                "web": [],
                "shop": ["urlprefix-/shop strip=/shop"],
                "db": ["primary"],
                "bad name": ["urlprefix-/x"],
                "other": [],
            }
        )
        catalog.change(services={"web": [], "shop": ["v2"]})  # drops its route tag
        wait_for(lambda: names(Gone) == ["shop"])
        assert next(m for m in seen if isinstance(m, Gone)).reason == NO_ROUTE_TAG
        assert caplog.text.count("'bad name' has characters") == 1  # logged once while it stays
        catalog.change(services={"web": [], "shop": ["urlprefix-/shop"]})
        wait_for(lambda: names(Update) == ["web", "shop", "shop"])  # back: read again, even if unchanged
        del catalog.instances["shop"]
        catalog.change(services={"web": []})  # last instance deregistered
        wait_for(lambda: names(Gone) == ["shop", "shop"])
        assert [m for m in seen if isinstance(m, Gone)][1].reason == DEREGISTERED
        assert seen[-1] == Listed(("web",)) and names(Update) == ["web", "shop", "shop"]
    finally:
        stop.set()
        catalog.change(checks=list(BASE))
        thread.join(5)


def test_a_follower_that_fails_stops_the_watch_with_its_error():
    """A follower thread that dies (a bug, an answer the client cannot decode) must not leave the
    watch deaf: run() raises, so the watcher's owner stops and its supervisor restarts it."""

    class Broken(Catalog):
        def catalog_services(self, *, index, wait):
            raise ValueError("Expecting value: line 1 column 1 (char 0)")

    stop = threading.Event()
    watch = CatalogWatch(Broken(), ["web"], lambda _u: None, stop, timing=WatchTiming(wait=2, min_interval=0))
    raised: list[BaseException] = []

    def run() -> None:
        try:
            watch.run()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: raised)
        assert str(raised[0]) == "catalog.services stopped: ValueError: Expecting value: line 1 column 1 (char 0)"
        assert not stop.is_set()  # stopping is the owner's decision
    finally:
        stop.set()
        thread.join(5)
