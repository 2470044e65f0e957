"""Webapps served from the test process and registered straight through Consul's agent API.

Lighter than one webapp and one `disco register` process per instance (the routing tests run
many instances of several services); `disco register` itself is covered by test_pipeline.py.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

import requests

from testkit import ConsulAgent, take_port, wait_until
from webapp.app import Server, make_server

from .conftest import Stack


class Apps:
    def __init__(self, consul: ConsulAgent) -> None:
        self.consul = consul
        self.servers: dict[str, Server] = {}
        self.ports: dict[str, int] = {}

    def start(
        self,
        service: str,
        instance: str,
        tags: tuple[str, ...] = (),
        meta: dict[str, str] | None = None,
        register: bool = True,
    ) -> int:
        port = take_port()
        server = make_server("127.0.0.1", port, instance)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        self.servers[instance], self.ports[instance] = server, port
        if register:
            self.register(service, instance, tags, meta)
        return port

    def register(
        self,
        service: str,
        instance: str,
        tags: tuple[str, ...] = (),
        meta: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.consul.put(
            "/v1/agent/service/register",
            {
                "Name": service,
                "ID": instance,
                "Address": "127.0.0.1",
                "Port": port or self.ports[instance],
                "Tags": list(tags),
                "Meta": meta or {},
            },
        )

    def deregister(self, instance: str) -> None:
        self.consul.put(f"/v1/agent/service/deregister/{instance}")

    def close(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()


def start_routed(stack: Stack, services: list[str], *values: str, live: bool = True, expect: int | None = None) -> None:
    """HAProxy + `disco watch` for ``services`` (the first is the default backend), with --set ``values``."""
    extra: list[str] = []
    for name in services[1:]:
        extra += ["--service", name]
    for value in values:
        extra += ["--set", value]
    stack.service = services[0]
    stack.watch_args = (lambda orig: lambda *more: orig(*extra, *more))(stack.watch_args)
    stack.start_balancer(live=live)
    assert stack.watch is not None
    wait_until(lambda: "applied" in stack.watch.output(), 20, what="the watcher's first pass")
    if expect is not None:
        wait_until(lambda: len(stack.servers_in_config()) == expect, 20, what=f"{expect} servers in the config")


def get(stack: Stack, path: str = "/", host: str | None = None, **kwargs: Any) -> requests.Response:
    headers = {"Connection": "close", **({"Host": host} if host else {}), **kwargs.pop("headers", {})}
    return requests.get(
        f"http://127.0.0.1:{stack.lb_port}{path}",
        headers=headers,
        timeout=kwargs.pop("timeout", 3),
        allow_redirects=False,
        **kwargs,
    )


def reached(stack: Stack, count: int, path: str = "/", host: str | None = None) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(count):
        response = get(stack, path, host)
        seen[response.headers.get("X-Instance", f"status {response.status_code}")] += 1
    return seen
