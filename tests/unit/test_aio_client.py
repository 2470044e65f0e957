"""How an answer of /v1/health/service/NAME is read (pure: status, headers and body as data)."""

from __future__ import annotations

import pytest

from discovery.consul.aio_client import ConnectionReset, _reply
from discovery.errors import AccessDenied, CatalogUnavailable

WHERE = "Consul at http://127.0.0.1:8500"


def test_an_answer_carries_its_index_and_where_it_came_from():
    headers = {"X-Consul-Index": "42", "X-Cache": "HIT", "X-Consul-Query-Backend": "streaming"}
    reply = _reply(WHERE, 200, headers, b'[{"Service": {"ID": "a"}}]')
    assert (reply.index, len(reply.entries), reply.cache, reply.backend) == (42, 1, "HIT", "streaming")
    assert reply.last_contact_ms is None


def test_last_contact_is_read_for_the_max_stale_rule():
    assert _reply(WHERE, 200, {"X-Consul-Index": "1", "X-Consul-LastContact": "2500"}, b"[]").last_contact_ms == 2500


def test_a_refused_token_is_access_denied_not_an_outage():
    with pytest.raises(AccessDenied, match="403"):
        _reply(WHERE, 403, {}, b"ACL not found")


def test_an_empty_answer_filtered_by_acls_is_not_an_empty_service():
    with pytest.raises(AccessDenied, match="filtered by ACLs"):
        _reply(WHERE, 200, {"X-Consul-Index": "5", "X-Consul-Results-Filtered-By-ACLs": "true"}, b"[]")


def test_too_many_connections_is_a_reset():
    with pytest.raises(ConnectionReset):
        _reply(WHERE, 429, {}, b"Your IP is issuing too many concurrent connections")


@pytest.mark.parametrize(
    "status, headers, body",
    [(500, {"X-Consul-Index": "1"}, b"rpc error"), (200, {}, b"[]"), (200, {"X-Consul-Index": "1"}, b"{not json")],
)
def test_other_failures_are_unavailable(status, headers, body):
    with pytest.raises(CatalogUnavailable):
        _reply(WHERE, status, headers, body)
