"""The pure part of `disco registrator`: a container description -> registrations or reasons."""

from __future__ import annotations

import pytest

from discovery.registration.labels import (
    Container,
    Placement,
    container_of,
    from_inspect,
    plan,
    service_id,
    split_tags,
)
from discovery.state import checks

CID = "0123456789abcdef" * 4
HOST_IP = Placement(host="node-1", host_ip="127.0.0.1")


def box(labels: dict[str, str] | None = None, env: dict[str, str] | None = None, **kw: object) -> Container:
    base: dict[str, object] = {
        "id": CID,
        "name": "shop-1",
        "image": "registry.local/team/shop:1.2",
        "labels": labels or {},
        "env": env or {},
        "exposed": (8080,),
        "published": {8080: (("0.0.0.0", 32768),)},
        "networks": {"front": "172.18.0.5"},
    }
    base.update(kw)
    return Container(**base)  # type: ignore[arg-type]


def one(container: Container, placement: Placement = HOST_IP):
    outcome = plan(container, placement)
    assert not outcome.skipped, outcome.skipped
    [wanted] = outcome.wanted
    return wanted.registration


def refused(container: Container, placement: Placement = HOST_IP) -> str:
    outcome = plan(container, placement)
    assert not outcome.wanted
    [reason] = outcome.skipped
    assert "shop-1" in reason and CID[:12] in reason and "\n" not in reason
    return reason


def test_disco_labels():
    reg = one(
        box(
            {
                "disco.service": "web",
                "disco.port": "8080",
                "disco.check": "/health",
                "disco.interval": "2s",
                "disco.tags": "a, b",
                "disco.meta.version": "7",
                "disco.weight": "5",
            }
        )
    )
    assert (reg.service, reg.address, reg.port) == ("web", "127.0.0.1", 32768)
    assert reg.id == f"disco-reg:node-1:{CID[:12]}:8080" and container_of(reg.id) == CID[:12]
    assert checks.check(checks.SERVER_NAME, reg.id, "id") is None
    assert reg.tags == ("a", "b") and dict(reg.meta) == {"version": "7", "disco-weight": "5"}
    assert (reg.check.kind, reg.check.target, reg.check.interval) == ("http", "http://127.0.0.1:32768/health", 2.0)


@pytest.mark.parametrize(("check", "kind"), [("tcp", "tcp"), ("none", "none"), (None, "tcp")])
def test_disco_check_kinds(check, kind):
    labels = {"disco.service": "web", "disco.port": "8080"} | ({"disco.check": check} if check else {})
    assert one(box(labels)).check.kind == kind


def test_network_and_default_addresses():
    labels = {"disco.service": "web", "disco.port": "8080"}
    reg = one(box(labels), Placement(host="h", network="front"))
    assert (reg.address, reg.port) == ("172.18.0.5", 8080)
    assert "not on network 'back'" in refused(box(labels), Placement(host="h", network="back"))
    assert one(box(labels), Placement(host="h")).address == "172.18.0.5"
    two = box(labels, networks={"front": "172.18.0.5", "back": "172.19.0.5"})
    assert "give --network" in refused(two, Placement(host="h"))
    assert "no IP on any network yet" in refused(box(labels, networks={"none": ""}), Placement(host="h"))
    assert "not published on 127.0.0.1" in refused(box(labels, published={}))
    elsewhere = box(labels, published={8080: (("10.0.0.1", 80),)})
    assert "not published on 127.0.0.1" in refused(elsewhere)


@pytest.mark.parametrize(
    ("labels", "why"),
    [
        ({"disco.service": "web\nbackend x", "disco.port": "8080"}, "service name"),
        ({"disco.service": "web", "disco.port": "0"}, "port 0"),
        ({"disco.service": "web", "disco.port": "99999"}, "outside"),
        ({"disco.service": "web", "disco.port": "80 80"}, "not a number"),
        ({"disco.service": "web", "disco.port": "8080", "disco.check": "/a b"}, "check path"),
        ({"disco.service": "web", "disco.port": "8080", "disco.check": '/a"b'}, "check path"),
        ({"disco.service": "web", "disco.port": "8080", "disco.check": "http://10.0.0.1/"}, "use /path"),
        ({"disco.service": "web", "disco.port": "8080", "disco.tags": "a,b c"}, "tag"),
        ({"disco.service": "web", "disco.port": "8080", "disco.meta.k": "v$x"}, "meta value"),
        ({"disco.service": "web", "disco.port": "8080", "disco.meta.k\ny": "v"}, "meta key"),
        ({"disco.service": "web", "disco.port": "8080", "disco.weight": "300"}, "weight"),
        ({"disco.service": "web", "disco.port": "8080", "disco.interval": "soon"}, "duration"),
        ({"disco.service": "web", "disco.port": "8080", "disco.interval": "100ms"}, "minimum"),
        ({"disco.service": "web"}, "disco.port"),
    ],
)
def test_hostile_disco_labels_are_refused_with_the_value(labels, why):
    assert why in refused(box(labels, exposed=(8080, 9090)))


def test_registrator_variables_env_and_labels():
    env = {
        "SERVICE_NAME": "api",
        "SERVICE_TAGS": "x,y",
        "SERVICE_CHECK_HTTP": "/health",
        "SERVICE_CHECK_INTERVAL": "1s",
        "SERVICE_VERSION": "3",
    }
    reg = one(box({"SERVICE_TAGS": "z"}, env))  # labels win over the environment
    assert (reg.service, reg.tags, dict(reg.meta)) == ("api", ("z",), {"version": "3"})
    assert (reg.check.kind, reg.check.interval) == ("http", 1.0)
    assert one(box(env={"SERVICE_NAME": "api", "SERVICE_8080_NAME": "api-http"})).service == "api-http"
    assert one(box(env={"SERVICE_NAME": "api"})).check.kind == "none"
    assert one(box(env={"SERVICE_NAME": "api", "SERVICE_CHECK_TCP": "true"})).check.kind == "tcp"
    assert plan(box(env={"SERVICE_NAME": "api", "SERVICE_IGNORE": "1"}), HOST_IP).wanted == ()
    assert "SERVICE" not in str(one(box(env={"SERVICE_NAME": "api"})).meta)


def test_default_every_published_port_named_after_the_image():
    assert one(box()).service == "shop"
    several = box(published={8080: (("", 1),), 9090: (("", 2),)}, exposed=(8080, 9090))
    assert sorted(w.registration.service for w in plan(several, HOST_IP).wanted) == ["shop-8080", "shop-9090"]
    assert plan(box(), Placement(host="h", host_ip="127.0.0.1", explicit=True)).wanted == ()
    assert one(box({"SERVICE_NAME": "x"}), Placement(host="h", host_ip="127.0.0.1", explicit=True)).service == "x"


REDIRECT = "urlprefix-/old redirect=301,https://new.example.com$path"


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("a,b", ["a", "b"]),
        (" a , b ,, ", ["a", "b"]),
        ("", []),
        (REDIRECT, [REDIRECT]),
        (f"blue,{REDIRECT},v2", ["blue", REDIRECT, "v2"]),
        ("urlprefix-/old redirect=301, https://n.example.com/", ["urlprefix-/old redirect=301,https://n.example.com/"]),
        ("urlprefix-/a strip=/a,urlprefix-/b", ["urlprefix-/a strip=/a", "urlprefix-/b"]),  # nothing open: two tags
        (
            "urlprefix-/x redirect=301,https://a.example.com/,v2",
            ["urlprefix-/x redirect=301,https://a.example.com/", "v2"],
        ),
        ("redirect=301,https://a.example.com/", ["redirect=301", "https://a.example.com/"]),  # not a route tag
        (r"a\,b,c", ["a,b", "c"]),  # an escaped comma, in any tag
        (
            r"urlprefix-/old redirect=301\,https://n.example.com/",
            ["urlprefix-/old redirect=301,https://n.example.com/"],
        ),
    ],
)
def test_tags_split_on_commas_except_inside_a_redirect_or_escaped(text, tags):
    assert split_tags(text) == tags


def test_a_route_tag_with_a_redirect_registers_from_both_vocabularies():
    labels = {"disco.service": "web", "disco.port": "8080", "disco.tags": f"blue,{REDIRECT}"}
    assert one(box(labels)).tags == ("blue", REDIRECT)
    assert one(box(env={"SERVICE_NAME": "web", "SERVICE_TAGS": f"{REDIRECT},v2"})).tags == (REDIRECT, "v2")


def test_service_name_on_several_ports_gets_the_port_appended_unless_the_name_is_the_ports_own():
    two = {"published": {80: (("", 1),), 9090: (("", 2),)}, "exposed": (80, 9090)}

    def names(container: Container) -> list[str]:
        return sorted(w.registration.service for w in plan(container, HOST_IP).wanted)

    assert names(box(env={"SERVICE_NAME": "app"}, **two)) == ["app-80", "app-9090"]
    assert names(box(env={"SERVICE_NAME": "app", "SERVICE_9090_NAME": "metrics"}, **two)) == ["app-80", "metrics"]
    assert names(box(labels={"SERVICE_80_NAME": "www", "SERVICE_9090_NAME": "metrics"}, **two)) == ["metrics", "www"]
    assert names(box(env={"SERVICE_NAME": "app"})) == ["app"]  # one port: the name as it is
    explicit = Placement(host="h", host_ip="127.0.0.1", explicit=True)
    only = box(env={"SERVICE_9090_NAME": "metrics"}, **two)
    assert sorted(w.registration.service for w in plan(only, explicit).wanted) == ["metrics"]


def test_label_filter():
    labels = {"disco.service": "web", "disco.port": "8080", "team": "a"}
    assert plan(box(labels), Placement(host="h", host_ip="127.0.0.1", label="team=b")).wanted == ()
    assert plan(box(labels), Placement(host="h", host_ip="127.0.0.1", label="team")).wanted


def test_ownership():
    sid = service_id(HOST_IP, CID, 8080)
    assert HOST_IP.owns(sid) and not Placement(host="node-10").owns(sid)
    assert not HOST_IP.owns("web-node-1-8080")


def test_from_inspect():
    attrs = {
        "Id": CID,
        "Name": "/shop-1",
        "State": {"Paused": True, "Health": {"Status": "starting"}},
        "Config": {
            "Image": "shop",
            "Env": ["A=1", "B=x=y"],
            "Labels": {"l": "v"},
            "StopSignal": "SIGQUIT",
            "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
            "Healthcheck": {"Test": ["CMD", "true"]},
        },
        "NetworkSettings": {
            "Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32768"}], "53/udp": None},
            "Networks": {"front": {"IPAddress": "172.18.0.5"}},
        },
    }
    c = from_inspect(attrs)
    assert (c.name, c.env, c.exposed, c.published) == (
        "shop-1",
        {"A": "1", "B": "x=y"},
        (8080,),
        {8080: (("127.0.0.1", 32768),)},
    )
    assert (c.healthcheck, c.health, c.paused, c.stop_signal, c.networks) == (
        True,
        "starting",
        True,
        "SIGQUIT",
        {"front": "172.18.0.5"},
    )
    assert not from_inspect({**attrs, "Config": {"Healthcheck": {"Test": ["NONE"]}}}).healthcheck
