"""Route tags (fabio's syntax): the grammar, the precedence of routes, conflicts."""

from __future__ import annotations

import pytest

from discovery.errors import TemplateError
from discovery.state.convert import convert
from discovery.state.model import Route, Service, ServiceSettings
from discovery.state.routes import parse_tag, redirect_target
from discovery.state.routing import parse_ports, table


@pytest.mark.parametrize(
    "tag, route",
    [
        ("urlprefix-/api", Route(path="/api")),
        ("urlprefix-/", Route(path="/")),
        ("urlprefix-/api/", Route(path="/api/")),
        ("urlprefix-shop.example.com/", Route(host="shop.example.com", path="/")),
        ("urlprefix-Shop.Example.COM/api", Route(host="shop.example.com", path="/api")),
        ("urlprefix-*.example.com/", Route(host="*.example.com", path="/")),
        ("urlprefix-/api strip=/api", Route(path="/api", strip="/api")),
        ("urlprefix-/api/v1 strip=/api/", Route(path="/api/v1", strip="/api")),
        (
            "urlprefix-/old redirect=301,https://example.com/new$path",
            Route(path="/old", redirect_code=301, redirect_url="https://example.com/new$path"),
        ),
        (
            "urlprefix-/x redirect=308,http://example.com:8443",
            Route(path="/x", redirect_code=308, redirect_url="http://example.com:8443"),
        ),
        ("urlprefix-:5432 proto=tcp", Route(path="", tcp_port=5432)),
        ("urlprefix-/a proto=http", Route(path="/a")),
    ],
)
def test_route_tags_in_fabios_syntax(tag, route):
    assert parse_tag(tag) == route


@pytest.mark.parametrize(
    "tag",
    [
        "urlprefix-",
        "urlprefix-api",
        "urlprefix-/api\nbind :1",
        "urlprefix-/api  strip=/api",
        "urlprefix-/a#b",
        "urlprefix-/a b",
        "urlprefix-/api allow=10.0.0.0/8",
        "urlprefix-/api prepend=/x",
        "urlprefix-/api weight=0.5",
        "urlprefix-/api strip=/api strip=/api",
        "urlprefix-/api strip=/other",
        "urlprefix-/api strip=/ap",
        "urlprefix-/api strip=/",
        "urlprefix-/../etc",
        "urlprefix-/a/./b",
        "urlprefix-/a//b",
        "urlprefix-/a%20b",
        "urlprefix-/a?x=1",
        "urlprefix-/${X}",
        "urlprefix-/a\\b",
        "urlprefix-/" + "a" * 300,
        "urlprefix-ex ample.com/",
        "urlprefix--bad.example.com/",
        "urlprefix-bad-.example.com/",
        "urlprefix-a..b/",
        "urlprefix-*/",
        "urlprefix-*.*.example.com/",
        "urlprefix-a.*.example.com/",
        "urlprefix-a_b.example.com/",
        "urlprefix-" + "a" * 64 + ".com/",
        "urlprefix-127.0.0.1:80/",
        "urlprefix-/x redirect=300,https://example.com/",
        "urlprefix-/x redirect=301",
        "urlprefix-/x redirect=301,ftp://example.com/",
        "urlprefix-/x redirect=301,https://example.com/a%[src]",
        "urlprefix-/x redirect=301,https://example.com/$path/x",
        "urlprefix-/x redirect=301,https://exa$mple.com/",
        "urlprefix-/x redirect=301,https://example.com:99999/",
        "urlprefix-/x redirect=301,/relative",
        "urlprefix-/x redirect=301,https://example.com/../a",
        "urlprefix-/x strip=/x redirect=301,https://a.com/",
        "urlprefix-:0 proto=tcp",
        "urlprefix-:70000 proto=tcp",
        "urlprefix-:5432",
        "urlprefix-:54a proto=tcp",
        "urlprefix-:5432 proto=tcp strip=/a",
        "urlprefix-/a proto=tcp",
        "urlprefix-/a proto=https",
        "urlprefix-/a proto=grpc",
        "urlprefix-/a strip",
        "urlprefix-/a =x",
    ],
)
def test_hostile_or_unsupported_route_tags_are_refused_with_one_line(tag):
    reason = parse_tag(tag)
    assert isinstance(reason, str) and "\n" not in reason and len(reason) < 300


def entry(sid, tags=(), meta=None, port=8080):
    return {
        "Node": {"Node": "n1", "Address": "10.0.0.1"},
        "Service": {"ID": sid, "Address": "10.0.0.1", "Port": port, "Tags": list(tags), "Meta": meta or {}},
        "Checks": [],
    }


def test_a_bad_route_is_dropped_with_a_line_naming_instance_and_value_not_the_service():
    conv = convert("api", [entry("api-1", ["urlprefix-/api", "urlprefix-/x allow=10.0.0.0/8", "v2"])])
    assert [i.id for i in conv.service.instances] == ["api-1"]
    assert conv.service.routes == (Route(path="/api"),)
    assert conv.service.instances[0].tags == ("v2",)  # route tags are not general tags
    assert len(conv.skipped) == 1
    assert "api-1" in conv.skipped[0] and "allow" in conv.skipped[0]


def test_instances_disagreeing_on_routes_majority_wins_and_is_named():
    conv = convert("api", [entry("a", ["urlprefix-/v2"]), entry("b", ["urlprefix-/v1"]), entry("c", ["urlprefix-/v1"])])
    assert conv.service.routes == (Route(path="/v1"),)
    assert any("disagree on routes" in n and "(b, c)" in n and "(a)" in n for n in conv.skipped)


def svc(name, *tags, https_only=False):
    routes = tuple(sorted(r for r in (parse_tag(t) for t in tags) if isinstance(r, Route)))
    return Service(name, (), routes, ServiceSettings(https_only=https_only))


def order(t):
    return [(r.service, r.route.host, r.route.path) for r in t.http]


def test_most_specific_route_first_exact_host_wildcard_then_no_host_longest_path():
    t = table(
        [
            svc("web"),
            svc("api", "urlprefix-/api", "urlprefix-/api/v2/"),
            svc("shop", "urlprefix-shop.example.com/", "urlprefix-shop.example.com/cart"),
            svc("any", "urlprefix-*.example.com/", "urlprefix-*.eu.example.com/"),
        ]
    )
    assert order(t) == [
        ("shop", "shop.example.com", "/cart"),
        ("shop", "shop.example.com", "/"),
        ("web", "web", "/"),
        ("any", "*.eu.example.com", "/"),
        ("any", "*.example.com", "/"),
        ("api", "", "/api/v2/"),
        ("api", "", "/api"),
    ]
    assert [r.id for r in t.http] == [f"r{i}" for i in range(1, 8)]
    assert t.default_backend == "web" and t.notes == ()


def test_conflicts_lowest_service_name_wins_and_are_reported():
    t = table([svc("zeta", "urlprefix-/api"), svc("alpha", "urlprefix-/api strip=/api"), svc("beta", "urlprefix-/b")])
    assert [(r.service, r.route.path) for r in t.http] == [("alpha", "/api"), ("beta", "/b")]
    assert len(t.notes) == 1 and "alpha" in t.notes[0] and "zeta" in t.notes[0] and "alpha wins" in t.notes[0]
    # Same for a service whose default route (its name as Host) is claimed by another's tag.
    t = table([svc("web"), svc("other", "urlprefix-web/")])
    assert [r.service for r in t.http] == ["other"] and "other wins" in t.notes[0]


def test_tcp_routes_need_an_allowed_port_not_haproxys_own():
    db, cache, other = (
        svc("db", "urlprefix-:5432 proto=tcp"),
        svc("cache", "urlprefix-:6379 proto=tcp"),
        svc("zz", "urlprefix-:5432 proto=tcp"),
    )
    t = table([svc("web"), db, cache, other], {"tcp_ports": "5000-5500", "frontend_port": "6379"})
    assert t.tcp == ((5432, "db"),)
    assert any("6379" in n and "frontend_port" in n for n in t.notes)
    assert any("5432" in n and "db wins" in n for n in t.notes)
    assert table([db], {}).tcp == () and "tcp_ports" in table([db], {}).notes[0]
    assert table([db, svc("web")]).default_backend == "web"


@pytest.mark.parametrize("text", ["x", "0", "5-1", "70000", "1-70000", "5;6"])
def test_bad_tcp_ports_value_is_an_operator_error(text):
    with pytest.raises(TemplateError):
        parse_ports(text)


def test_tcp_ports_ranges():
    assert parse_ports("5000, 9000-9002") == {5000, 9000, 9001, 9002}


@pytest.mark.parametrize(
    "url, location, hosts, self_path",
    [
        # fabio: $path is the request's path and its query string; the "/" before $path goes
        (
            "https://new.example.com$path",
            "https://new.example.com%[pathq]",
            ("new.example.com", "new.example.com:443"),
            "",
        ),
        (
            "https://new.example.com/$path",
            "https://new.example.com%[pathq]",
            ("new.example.com", "new.example.com:443"),
            "",
        ),
        ("http://a.example/v2/$path", "http://a.example/v2%[pathq]", ("a.example", "a.example:80"), None),
        ("http://a.example/v2$path", "http://a.example/v2%[pathq]", ("a.example", "a.example:80"), None),
        # without $path: the URL as it is (an empty path is "/"), no query string added
        ("https://a.example", "https://a.example/", ("a.example", "a.example:443"), "/"),
        ("https://a.example/here", "https://a.example/here", ("a.example", "a.example:443"), "/here"),
        ("http://a.example:8080/x/", "http://a.example:8080/x/", ("a.example:8080",), "/x/"),
        ("https://a.example:443$path", "https://a.example:443%[pathq]", ("a.example", "a.example:443"), ""),
    ],
)
def test_redirect_target_like_fabio(url, location, hosts, self_path):
    target = redirect_target(url)
    assert (target.location, target.hosts, target.self_path) == (location, hosts, self_path)


def test_redirect_rules_skip_a_redirect_onto_the_request_itself():
    rules = table(
        [svc("old", "urlprefix-/a redirect=301,https://x.example$path", "urlprefix-/b redirect=302,http://x.example/b")]
    ).http
    assert [r.as_context()["redirect_self"] for r in rules] == [
        {"scheme": "https", "hosts": ["x.example", "x.example:443"], "path": ""},
        {"scheme": "http", "hosts": ["x.example", "x.example:80"], "path": "/b"},
    ]
    assert rules[0].as_context()["redirect_location"] == "https://x.example%[pathq]"


@pytest.mark.parametrize("text", ["0", "30", "1m30s", "25d", "-1s", "1h;bind"])
def test_bad_tcp_idle_timeout_value_is_an_operator_error(text):
    with pytest.raises(TemplateError, match="tcp_idle_timeout"):
        table([svc("db", "urlprefix-:5432 proto=tcp")], {"tcp_ports": "5432", "tcp_idle_timeout": text})


def test_every_tcp_service_has_an_idle_timeout_none_by_default():
    db, other = svc("db", "urlprefix-:5432 proto=tcp"), svc("zz", "urlprefix-:5432 proto=tcp")
    t = table([svc("web"), db, other], {"tcp_ports": "5432"})
    assert t.tcp_timeouts == (("db", "24d"), ("zz", "24d"))  # the loser of a conflict keeps a backend
    assert t.as_context()["tcp"] == [{"port": 5432, "service": "db", "idle_timeout": "24d"}]
    assert table([db], {"tcp_ports": "5432", "tcp_idle_timeout": "2h"}).tcp_timeouts == (("db", "2h"),)
