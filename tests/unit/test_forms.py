"""Which server lines may skip `haproxy -c`: only values of a fixed grammar are abstracted."""

import pytest

from discovery.haproxy.forms import KnownForms, form
from discovery.haproxy.plan import Add, Remove, ServerLine


def line(name="web-1", address="10.0.0.1", port=8080, options=("check",), backend="web"):
    return ServerLine(backend, name, address, port, tuple(options))


def test_address_port_name_and_weight_are_abstracted():
    assert form(line()) == form(line("web-2", "192.168.9.9", 1))
    assert form(line(options=("check", "weight", "3"))) == form(line(options=("check", "weight", "256")))


@pytest.mark.parametrize(
    "server",
    [
        line(address="db.internal"),  # resolved by HAProxy: never trusted by form
        line(port=0),
        line(port=70000),
        line(name="we b"),
        line(name=""),
        line(options=("check", "weight", "257")),
        line(options=("check", "weight", "x")),
        line(options=("weight",)),
    ],
)
def test_values_outside_their_grammar_have_no_form(server):
    assert form(server) is None


def test_backend_ip_version_and_options_are_part_of_the_form():
    assert form(line(backend="api")) != form(line())
    assert form(line(address="::1")) != form(line())
    assert form(line(options=("check", "inter", "2s"))) != form(line())


def test_cover_needs_every_added_line_known_removals_need_nothing():
    known = KnownForms()
    known.learn([line()])
    assert known.cover([Add(line("web-9", "10.9.9.9", 9999)), Remove("web", "web-1")])
    assert not known.cover([Add(line(options=("check", "backup")))])
    known.relearn(lambda: None)
    assert not known.cover([Add(line())])
