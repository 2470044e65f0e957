"""Hostile catalog data never becomes an extra HAProxy directive or an invalid config.

Property-based (hypothesis) over conversion and the default template, with the real
`haproxy -c` as the oracle.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discovery.haproxy.render import DEFAULT_TEMPLATE, Renderer
from discovery.state.convert import convert
from discovery.state.model import DesiredState

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")

NASTY = st.sampled_from(
    [
        "\n",
        "\r",
        " ",
        "#",
        '"',
        "'",
        "\\",
        "${X}",
        "server evil 6.6.6.6:80",
        "bind :1",
        "backend x",
        "\x00",
        "\t",
        "x" * 10_000,
        "",
        "::",
        "[",
        "]",
        ":80",
        "%[src]",
    ]
)
TEXT = st.one_of(
    st.text(max_size=40),
    NASTY,
    st.lists(NASTY, max_size=4).map("".join),
    st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True),
)
PORT = st.one_of(st.integers(-5, 70_000), st.sampled_from(["80", None, 1.5, True]))
ADDRESS = st.one_of(TEXT, st.ip_addresses().map(str))
ENTRY = st.fixed_dictionaries(
    {
        "Node": st.fixed_dictionaries({"Node": TEXT, "Address": ADDRESS}),
        "Service": st.fixed_dictionaries(
            {
                "ID": TEXT,
                "Address": ADDRESS,
                "Port": PORT,
                "Tags": st.lists(TEXT, max_size=3),
                "Meta": st.dictionaries(TEXT, TEXT, max_size=3),
            }
        ),
        "Checks": st.lists(
            st.fixed_dictionaries({"Status": st.sampled_from(["passing", "warning", "critical"])}), max_size=2
        ),
    }
)
RENDERER = Renderer(DEFAULT_TEMPLATE)
VALUES = {"frontend_port": "18080", "stats_port": "18081"}
SERVER_LINE = re.compile(
    r"^    server [A-Za-z0-9_.:-]+ (\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d+ check inter 1s fall 2 rise 1$"
)


# New cases on every developer run; the same cases in CI, so a landing is never decided by chance.
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("CI") == "true",
)
@given(st.lists(ENTRY, max_size=6))
def test_hostile_entries_render_a_valid_config_with_one_line_per_usable_instance(entries):
    conversion = convert("web", entries)
    text = RENDERER.render(DesiredState((conversion.service,)), VALUES)
    baseline = RENDERER.render(DesiredState((convert("web", []).service,)), VALUES)
    server_lines = [ln for ln in text.splitlines() if ln.strip().startswith("server ")]
    # Nothing but one well-formed server line per usable instance was added to the empty config.
    assert len(server_lines) == len(conversion.service.instances)
    assert all(SERVER_LINE.match(ln) for ln in server_lines), server_lines
    assert [ln for ln in text.splitlines() if ln not in server_lines] == baseline.splitlines()
    # Every entry is either an instance or one reason; reasons are single lines.
    assert all("\n" not in note and "\r" not in note for note in conversion.skipped)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "haproxy.cfg"
        cfg.write_text(text)
        result = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# Route tags and disco-* settings: fragments that form valid routes and settings, mixed with hostile ones.
PIECE = (
    st.sampled_from(
        [
            "urlprefix-",
            "/",
            "/api",
            "/a.b~c-d",
            "shop.example.com",
            "*.example.com",
            "SHOP.Example.com",
            "*.",
            "*",
            " strip=/api",
            " strip=",
            " redirect=301,https://x.example.com/n$path",
            " redirect=302,http://x.example.com$path",
            " redirect=308,http://x.example.com:80/n",
            " redirect=308,",
            " proto=tcp",
            " proto=http",
            ":5432",
            ":20005",
            " allow=10.0.0.0/8",
            "$path",
            "..",
            "%[src]",
            ",",
            "=",
            "-",
            "_",
            "a",
            "0",
            "tcp",
            "none",
            "true",
            "leastconn",
            "source",
            "SRV",
            "256",
            "3",
            "-1",
            "1e3",
            "v2=10",
            "v3=95",
            "90s",
            "25d",
        ]
    )
    | NASTY
)
FRAGMENTS = st.lists(PIECE, min_size=1, max_size=6).map("".join)
ROUTE_TAG = st.one_of(FRAGMENTS.map(lambda s: "urlprefix-" + s), FRAGMENTS)
DISCO_META = st.dictionaries(
    st.sampled_from(
        [
            "disco-check",
            "disco-balance",
            "disco-sticky",
            "disco-maxconn",
            "disco-https-only",
            "disco-idle-timeout",
            "disco-weight",
            "disco-split",
            "disco-other",
        ]
    ),
    FRAGMENTS,
    max_size=4,
)
ROUTED_ENTRY = st.fixed_dictionaries(
    {
        "Node": st.just({"Node": "n1", "Address": "10.0.0.1"}),
        "Service": st.fixed_dictionaries(
            {
                "ID": st.sampled_from(["i-1", "i-2", "i-3"]),
                "Port": st.integers(1, 65535),
                "Tags": st.lists(st.one_of(ROUTE_TAG, st.sampled_from(["backup", "v2", "v3"])), max_size=4),
                "Meta": DISCO_META,
            }
        ),
    }
)
ROUTED_VALUES = {**VALUES, "tcp_ports": "20000-20010"}
_W = r"[A-Za-z0-9._~/-]"
ROUTE = r"\{ var\(txn\.route\) -m str r\d+ \}"
ALLOWED = [
    re.compile(p)
    for p in (
        r"    # [A-Za-z0-9._~/:*=,$ ()-]+ -> (web|api)",
        r"    acl r\d+_host req\.hdr\(host\),field\(1,:\),lower -m (str [a-z0-9.-]+|end \.[a-z0-9.-]+)",
        rf"    acl r\d+_path path(_beg)? /{_W}*",
        r"    http-request set-var\(txn\.route\) str\(r\d+\) if (?P<m>!route_found( r\d+_host)?( r\d+_path)?)"
        r"( !r\d+_self_host( \|\| (?P=m) !r\d+_self_path)?)?",
        r"    # never a redirect onto the request itself \(as fabio\): the next route that matches takes it",
        r"    acl r\d+_self_host req\.hdr\(host\),lower -m str [a-z0-9.-]+(:\d+)?( [a-z0-9.-]+:\d+)?",
        rf"    acl r\d+_self_path path /{_W}*",
        rf"    http-request redirect code 30[12378] location https?://[a-z0-9.-]+(:\d+)?{_W}*(%\[pathq\])? if {ROUTE}",
        rf"    http-request redirect code 301 location https://%\[req\.hdr\(host\),field\(1,:\)\]%\[pathq\] if ({ROUTE}|!route_found)",
        rf"    http-request set-path %\[path,regsub\(\^/{_W}*/\?,/\)\] if {ROUTE}",
        rf"    use_backend (web|api) if {ROUTE}",
        r"    default_backend (web|api)",
        r"frontend tcp-200(0\d|10)",
        r"    mode tcp",
        r"    # idle timeout: none unless asked for \(24d is HAProxy's longest\); keep-alive finds dead peers",
        r"    timeout (client|server) (24d|[1-9][0-9]{0,9}(ms|s|m|h|d))",
        r"    option (cli|srv)tcpka",
        r"    bind \*:200(0\d|10)",
        r"    server (n1:)?i-[123] 10\.0\.0\.1:\d+( check inter 1s fall 2 rise 1)?( weight \d+)?( backup)?( maxconn \d+)?",
        r"    balance (roundrobin|leastconn|first|random|source)",
        r"    hash-type consistent",
        rf"    option httpchk GET /{_W}*",
        r"    cookie [A-Za-z0-9_.-]+ insert indirect nocache dynamic",
        r"    dynamic-cookie-key [0-9a-f]{32}",
        r"    # (Dynamic cookies|through the runtime API).*",
        r"",
    )
]


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("CI") == "true",
)
@given(st.lists(ROUTED_ENTRY, max_size=3), st.lists(ROUTED_ENTRY, max_size=2))
def test_hostile_routes_and_settings_never_reach_the_config(web_entries, api_entries):
    web, api = convert("web", web_entries), convert("api", api_entries)
    text = RENDERER.render(DesiredState((web.service, api.service)), ROUTED_VALUES)
    baseline = set(
        RENDERER.render(
            DesiredState((convert("web", []).service, convert("api", []).service)), ROUTED_VALUES
        ).splitlines()
    )
    added = [ln for ln in text.splitlines() if ln not in baseline]
    assert [ln for ln in added if not any(p.fullmatch(ln) for p in ALLOWED)] == []
    assert all("\n" not in note and "\r" not in note for note in web.skipped + api.skipped)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "haproxy.cfg"
        cfg.write_text(text)
        result = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# Service names (--discover takes them from the catalog): the names the template gives its own sections,
# HAProxy keywords, near misses and hostile text.  Whatever the catalog lists, the config stays valid,
# every other service keeps its backend, and a refused name is one line saying which section it would take.
NAME = st.one_of(
    st.sampled_from(
        [
            "stats",
            "http",
            "https",
            "tcp-20000",
            "tcp-20010",
            "tcp-20011",
            "tcp-80",
            "web",
            "STATS",
            "stats.",
            "defaults",
            "global",
            "frontend",
            "backend",
            "listen",
            "r1",
            "route_found",
            "discoprobehttp",
        ]
    ),
    TEXT,
    st.from_regex(r"(tcp-200[0-9]|[a-z0-9][a-z0-9._-]{0,8})", fullmatch=True),
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("CI") == "true",
)
@given(st.lists(NAME, max_size=5, unique=True), st.lists(st.booleans(), min_size=5, max_size=5))
def test_hostile_service_names_never_take_a_section_of_the_template(names, tcp):
    from discovery.consul.discover import discovered
    from discovery.haproxy.sections import headers

    listed = {
        name: [f"urlprefix-:{20000 + i} proto=tcp" if tcp[i] else f"urlprefix-/p{i}"] for i, name in enumerate(names)
    }
    found = discovered(listed, ["web"])
    services = [convert("web", [_entry("web-1", [])]).service]
    for name in found.followed:
        if name != "web":
            services.append(convert(name, [_entry(f"{name}-1", listed[name])]).service)
    state = DesiredState(tuple(services), frozenset(found.followed) - {"web"})
    admission = RENDERER.admit(state, ROUTED_VALUES, {})
    text = RENDERER.render(state, ROUTED_VALUES)
    own = RENDERER.own_sections(state, ROUTED_VALUES, {})
    assert {"http", "stats", "tcp-20000", "tcp-20010"} <= own.keys() and "tcp-20011" not in own
    refused = dict(admission.refused)
    assert set(refused) == {s.name for s in state.services if s.name in own} - {"web"}
    assert all("\n" not in reason and own[name] in reason for name, reason in refused.items())
    backends = [name for kind, name in headers(text) if kind == "backend"]
    assert backends == [s.name for s in state.services if s.name not in refused]  # every other service goes on
    proxies = [name for kind, name in headers(text) if kind in ("frontend", "backend", "listen")]
    assert len(proxies) == len(set(proxies)), proxies  # one namespace: no name used twice
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "haproxy.cfg"
        cfg.write_text(text)
        result = subprocess.run(["haproxy", "-c", "-f", str(cfg)], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _entry(sid: str, tags: list[str]) -> dict[str, object]:
    return {
        "Node": {"Node": "n1", "Address": "10.0.0.1"},
        "Service": {"ID": sid if re.fullmatch(r"[A-Za-z0-9_.:-]{1,127}", sid) else "i-1", "Port": 8080, "Tags": tags},
    }


FAILOVER_LINE = re.compile(
    r"^    server (dc2:)?[A-Za-z0-9_.:-]+ (\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d+ check inter 1s fall 2 rise 1( backup)?$"
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("CI") == "true",
)
@given(st.lists(ENTRY, max_size=3), st.lists(ENTRY, max_size=4))
def test_hostile_entries_from_a_failover_datacenter_become_valid_backup_lines_only(local_entries, remote_entries):
    from discovery.state.failover import merge

    local, remote = convert("web", local_entries).service, convert("web", remote_entries).service
    notes: list[str] = []
    merged = merge(local, {"dc2": remote}, ("dc2",), notes)
    assert merged.instances[: len(local.instances)] == local.instances  # local ones untouched
    text = RENDERER.render(DesiredState((merged,)), VALUES)
    server_lines = [ln for ln in text.splitlines() if ln.strip().startswith("server ")]
    assert all(FAILOVER_LINE.match(ln) for ln in server_lines), server_lines
    assert len({ln.split()[1] for ln in server_lines}) == len(server_lines)  # no name twice
    assert all("\n" not in note for note in notes)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "haproxy.cfg"
        cfg.write_text(text)
        result = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
