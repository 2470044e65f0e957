"""The Docker stack on a real engine: images built from this repository, compose as users run it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import docker
import pytest
import requests

from testkit import PUBLISHED, REPO, take_port, wait_until

PROJECT = "disco-e2e"
ARTIFACTS = REPO / "artifacts"


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return ["docker", "compose"]


@dataclass
class Stack:
    env: dict[str, str]
    client: docker.DockerClient
    timings: dict[str, float | int] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 900) -> str:
        result = subprocess.run(
            [*compose_command(), "-p", PROJECT, *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    @property
    def lb(self) -> str:
        return f"http://127.0.0.1:{self.env['DISCO_HTTP_PORT']}/"

    @property
    def stats(self) -> str:
        return f"http://127.0.0.1:{self.env['DISCO_STATS_PORT']}/"

    @property
    def consul(self) -> str:
        return f"http://127.0.0.1:{self.env['DISCO_CONSUL_PORT']}"

    def containers(self, service: str) -> list[docker.models.containers.Container]:
        return self.client.containers.list(
            filters={"label": [f"com.docker.compose.project={PROJECT}", f"com.docker.compose.service={service}"]}
        )

    def servers(self) -> dict[str, str]:
        """Backend `web` on HAProxy's stats page: server name -> status."""
        csv = requests.get(self.stats + ";csv", timeout=3).text
        return {
            r[1]: r[17]
            for r in (line.split(",") for line in csv.splitlines())
            if len(r) > 17 and r[0] == "web" and r[1] != "BACKEND"
        }

    def up_servers(self) -> set[str]:
        return {name for name, status in self.servers().items() if status == "UP"}

    def passing(self) -> list[str]:
        answer = requests.get(f"{self.consul}/v1/health/service/web?passing=1", timeout=3).json()
        return sorted(e["Service"]["ID"] for e in answer)


def engine_with_test_images() -> docker.DockerClient:
    """The Docker engine, answering, with the harness's base images built (fails the test otherwise)."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"end-to-end tests need a Docker engine (make deps starts one): {exc}", pytrace=False)
    subprocess.run([str(REPO / "scripts/build-test-images.sh")], check=True, timeout=900)
    return client


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    client = engine_with_test_images()
    # Published ports are reserved for this session (testkit.ports), and taken after the build,
    # which can take minutes, so the bind check is as close as it can be to `compose up`.
    env = {**os.environ, "CONSUL_IMAGE": "disco-test/consul:1.8.7"}
    s = Stack(env, client)
    ARTIFACTS.mkdir(exist_ok=True)
    s.compose("down", "-v", "--remove-orphans", timeout=120)
    t = time.monotonic()
    s.compose("build")
    s.timings["build"] = time.monotonic() - t
    for name in ("DISCO_HTTP_PORT", "DISCO_STATS_PORT", "DISCO_CONSUL_PORT"):
        env[name] = str(take_port(hosts=PUBLISHED))
    t = time.monotonic()
    s.compose("up", "-d", "--scale", "webapp=3")
    wait_until(lambda: len(s.up_servers()) == 3, 120, interval=0.2, what="3 servers UP on the stats page")
    s.timings["stack up (3 webapps UP)"] = time.monotonic() - t
    try:
        yield s
    finally:
        (ARTIFACTS / "e2e-timings.txt").write_text(
            "".join(f"{k}: {v}\n" if isinstance(v, int) else f"{k}: {v:.1f}s\n" for k, v in s.timings.items())
        )
        logs = subprocess.run(
            [*compose_command(), "-p", PROJECT, "logs", "--no-color"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        (ARTIFACTS / "e2e-compose.log").write_text(logs)
        s.compose("down", "-v", "--remove-orphans", timeout=300)
