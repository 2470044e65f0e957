import pytest

from discovery.errors import ConfigError
from discovery.registration.register import build_registration


def test_defaults_id_address_and_tcp_check():
    reg = build_registration("web", 8080, address="10.0.0.7", hostname="box_1")
    assert reg.id == "web-box_1-8080"
    body = reg.payload()
    assert body["Check"]["TCP"] == "10.0.0.7:8080"
    assert body["Check"]["Interval"] == "1s"
    assert body["Check"]["DeregisterCriticalServiceAfter"] == "60s"


def test_http_path_is_on_the_instance_and_url_is_taken_as_is():
    reg = build_registration("web", 8080, address="10.0.0.7", check_http="/health")
    assert reg.payload()["Check"]["HTTP"] == "http://10.0.0.7:8080/health"
    reg = build_registration("web", 8080, address="fd00::7", check_http="/health")
    assert reg.payload()["Check"]["HTTP"] == "http://[fd00::7]:8080/health"
    reg = build_registration("web", 8080, address="10.0.0.7", check_http="http://127.0.0.1:9/h")
    assert reg.payload()["Check"]["HTTP"] == "http://127.0.0.1:9/h"


def test_ttl_check():
    body = build_registration("web", 80, address="10.0.0.7", check_ttl=10).payload()
    assert body["Check"] == {
        "CheckID": "service:" + body["ID"],
        "Name": "web ttl check",
        "TTL": "10s",
        "DeregisterCriticalServiceAfter": "60s",
    }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"port": 0}, "outside 1..65535"),
        ({"port": 65536}, "outside 1..65535"),
        ({"service": "web app"}, "service name"),
        ({"service": "web\nbackend x"}, "service name"),
        ({"tags": ["ok", "a b"]}, "tag"),
        ({"meta": {"k": "v\n"}}, "meta value"),
        ({"address": "nope nope"}, "address"),
        ({"id": "id#1"}, "service ID"),
        ({"check_http": "health"}, "path starting with /"),
        ({"check_http": "/h", "check_ttl": 5.0}, "at most one"),
        ({"interval": 0.5}, "minimum of 1s"),
    ],
)
def test_bad_input_is_refused_with_one_clear_reason(kwargs, message):
    args = {"service": "web", "port": 8080, "address": "10.0.0.7"} | kwargs
    service, port = args.pop("service"), args.pop("port")
    with pytest.raises(ConfigError, match=message):
        build_registration(service, port, **args)


class StartingAgent:
    """An agent that is still starting: every call fails; the test stops the registrar meanwhile."""

    def __init__(self, stop):
        self.stop = stop
        self.calls: list[str] = []

    def register_service(self, payload):
        self.calls.append("register")
        self.stop.set()  # SIGTERM arrives while the first attempt is failing
        from discovery.errors import CatalogUnavailable

        raise CatalogUnavailable("agent starting")

    def agent_services(self):
        self.calls.append("services")
        return {}

    def deregister_service(self, service_id):
        self.calls.append("deregister")

    def ttl_pass(self, check_id, note=None):
        self.calls.append("ttl")


def test_registrar_stopped_while_registering_never_registers_again():
    import threading

    from discovery.registration.register import Registrar

    stop = threading.Event()
    agent = StartingAgent(stop)
    registration = build_registration("web", 8080, address="10.0.0.1", id="web-1")
    Registrar(agent, registration, stop).run()  # type: ignore[arg-type]
    assert agent.calls == ["register"]  # no second attempt, no "registering it again", nothing to undo
