"""The bundled template and the renderer; `haproxy -c` (real) is the oracle for validity."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from discovery.errors import TemplateError, ValidationError
from discovery.haproxy.render import DEFAULT_TEMPLATE, Renderer
from discovery.haproxy.validate import Validator
from discovery.state.model import DesiredState, Instance, Service

needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")


def state(*services):
    return DesiredState(tuple(services))


WEB = Service("web", (Instance("web-1", "n1", "10.0.0.1", 8080), Instance("web-2", "n2", "fd00::2", 8081)))


def test_default_template_lists_every_server_with_checks():
    text = Renderer(DEFAULT_TEMPLATE).render(state(WEB))
    assert "backend web" in text
    assert "server web-1 10.0.0.1:8080 check inter 1s fall 2 rise 1" in text
    assert "server web-2 [fd00::2]:8081 check inter 1s fall 2 rise 1" in text
    assert "bind *:80" in text and "bind *:1936" in text


def test_runtime_api_socket_is_private_and_admin_level():
    text = Renderer(DEFAULT_TEMPLATE).render(state(WEB), {"admin_socket": "/run/haproxy/admin.sock"})
    assert "stats socket /run/haproxy/admin.sock mode 600 level admin" in text


def test_stats_credentials_come_from_the_environment():
    renderer = Renderer(DEFAULT_TEMPLATE)
    assert "stats auth" not in renderer.render(state(WEB), env={})
    text = renderer.render(state(WEB), env={"DISCO_STATS_USER": "ops", "DISCO_STATS_PASSWORD": "s3cret"})
    assert "stats auth ops:s3cret" in text
    assert "stats auth a:b" in renderer.render(state(WEB), {"stats_user": "a", "stats_password": "b"}, env={})


def test_set_values_reach_the_template():
    text = Renderer(DEFAULT_TEMPLATE).render(state(WEB), {"frontend_port": "8080", "bind_address": "127.0.0.1"})
    assert "bind 127.0.0.1:8080" in text


def test_second_service_is_routed_by_host():
    text = Renderer(DEFAULT_TEMPLATE).render(state(WEB, Service("api")))
    assert "acl r1_host req.hdr(host),field(1,:),lower -m str api" in text
    assert "use_backend api if { var(txn.route) -m str r1 }" in text
    assert "default_backend web" in text


def test_reserved_names_cannot_be_set():
    with pytest.raises(TemplateError, match="reserved"):
        Renderer(DEFAULT_TEMPLATE).render(state(WEB), {"services": "x"})


def test_undefined_names_are_errors_with_the_line(tmp_path: Path):
    tpl = tmp_path / "t.j2"
    tpl.write_text("global\n{{ no_such_value }}\n")
    with pytest.raises(TemplateError, match=r"t\.j2:2.*no_such_value"):
        Renderer(tpl).render(state(WEB))


def test_syntax_errors_name_file_and_line(tmp_path: Path):
    tpl = tmp_path / "t.j2"
    tpl.write_text("ok\n{% for x in %}\n")
    with pytest.raises(TemplateError, match=r"t\.j2:2"):
        Renderer(tpl)


def test_template_sees_meta_tags_and_env(tmp_path: Path):
    tpl = tmp_path / "t.j2"
    tpl.write_text(
        "{% for i in service.web.instances %}{{ i.name }} {{ i.meta.get('weight', '1') }} "
        "{{ i.tags | join(',') }} {{ env.ZONE }}\n{% endfor %}"
    )
    web = Service("web", (Instance("a", "n", "10.0.0.1", 80, tags=("x", "y"), meta=(("weight", "5"),)),))
    assert Renderer(tpl).render(state(web), env={"ZONE": "z1"}) == "a 5 x,y z1\n"


@needs_haproxy
@pytest.mark.parametrize("services", [(Service("web"),), (WEB,), (WEB, Service("api"))])
def test_rendered_default_template_is_valid_haproxy(tmp_path: Path, services):
    out = tmp_path / "haproxy.cfg"
    out.write_text(Renderer(DEFAULT_TEMPLATE).render(state(*services), {"frontend_port": "18080"}))
    Validator().check(out)


@needs_haproxy
def test_validation_error_names_the_output_file_and_line(tmp_path: Path):
    candidate = tmp_path / ".tmp-candidate"
    candidate.write_text("global\n  no_such_keyword 1\n")
    with pytest.raises(ValidationError) as info:
        Validator().check(candidate, shown_as=Path("/etc/haproxy/haproxy.cfg"))
    assert "/etc/haproxy/haproxy.cfg:2" in str(info.value)
    assert ".tmp-candidate" not in str(info.value)
