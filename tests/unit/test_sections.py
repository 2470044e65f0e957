"""The template's own section names are read from the template, and a discovered service that would
take one is refused while the others go on (discovery/haproxy/sections.py)."""

from __future__ import annotations

from pathlib import Path

from discovery.haproxy.render import DEFAULT_TEMPLATE, Renderer
from discovery.haproxy.sections import admit, headers
from discovery.state.model import DesiredState, Route, Service


def test_the_bundled_template_names_http_stats_and_with_values_https_and_tcp_ports():
    renderer = Renderer(DEFAULT_TEMPLATE)
    assert renderer.own_sections(DesiredState((Service("web"),))) == {"http": "frontend http", "stats": "listen stats"}
    own = renderer.own_sections(DesiredState(), {"tls_cert_dir": "/certs", "tcp_ports": "5000,5432,80"})
    # 80 is HAProxy's own frontend port: no TCP route gets it, so no tcp-80 section either.
    assert set(own) == {"http", "https", "stats", "tcp-5000", "tcp-5432"}


def test_a_user_template_is_read_too_and_may_name_its_services(tmp_path: Path):
    template = tmp_path / "user.cfg.j2"
    template.write_text(
        "frontend fe_main\n    default_backend {{ service.web.name }}\n"
        "listen admin\n    bind :9000\n"
        "{% for s in services %}\nbackend {{ s.name }}\n{% endfor %}\n"
    )
    renderer = Renderer(template)
    web = Service("web")
    state = DesiredState(
        (web, Service("admin", routes=(Route(path="/a"),)), Service("api")), frozenset({"admin", "api"})
    )
    assert renderer.own_sections(state) == {"fe_main": "frontend fe_main", "admin": "listen admin"}
    admission = renderer.admit(state)
    assert [s.name for s in admission.state.services] == ["web", "api"]
    assert admission.refused == (
        (
            "admin",
            "service 'admin' refused: its backend would take the name of the template's own section `listen admin`",
        ),
    )
    assert [n for k, n in headers(renderer.render(state)) if k == "backend"] == ["web", "api"]
    assert renderer.admit(state) is admission  # the same state: the same answer, not a new state per pass


def test_only_discovered_names_are_refused():
    own = {"stats": "listen stats"}
    named = DesiredState((Service("stats"),))  # --service stats: the operator's choice, haproxy -c judges it
    assert admit(named, own).state is named
    found = DesiredState((Service("web"), Service("stats")), frozenset({"stats"}))
    assert [s.name for s in admit(found, own).state.services] == ["web"]
    assert admit(found, own).state.discovered == frozenset()
