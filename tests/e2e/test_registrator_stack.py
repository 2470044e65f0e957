"""The compose profile `registrator` on a real engine: webapps declared by labels, one `disco registrator`.

A stack of its own (project ``disco-reg-e2e``, scoped with DISCO_STACK), started with only the
services the profile needs, so the agent-based webapp image is neither built nor run.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import docker
import pytest

from testkit import PUBLISHED, REPO, take_port, wait_until

from .conftest import ARTIFACTS, Stack, compose_command, engine_with_test_images
from .test_stack import SteadyClient

PROJECT = "disco-reg-e2e"
SERVICES = ("consul", "haproxy", "registrator", "app")


class RegStack(Stack):
    def compose(self, *args: str, timeout: float = 900) -> str:
        result = subprocess.run(
            [*compose_command(), "-p", PROJECT, "--profile", "registrator", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    def scale(self, n: int) -> None:
        self.compose("up", "-d", "--no-build", "--scale", f"app={n}", *SERVICES, timeout=300)

    def containers(self, service: str) -> list[docker.models.containers.Container]:
        return self.client.containers.list(
            filters={"label": [f"com.docker.compose.project={PROJECT}", f"com.docker.compose.service={service}"]}
        )


@pytest.fixture(scope="module")
def regstack() -> Iterator[RegStack]:
    client = engine_with_test_images()
    env = {**os.environ, "CONSUL_IMAGE": "disco-test/consul:1.8.7", "DISCO_STACK": PROJECT}
    s = RegStack(env, client)
    ARTIFACTS.mkdir(exist_ok=True)
    s.compose("down", "-v", "--remove-orphans", timeout=120)
    s.compose("build", "haproxy", "registrator", "app")
    for name in ("DISCO_HTTP_PORT", "DISCO_STATS_PORT", "DISCO_CONSUL_PORT"):  # reserved after the build
        env[name] = str(take_port(hosts=PUBLISHED))
    t = time.monotonic()
    s.scale(2)
    wait_until(lambda: len(s.up_servers()) == 2, 120, interval=0.2, what="2 labelled webapps UP on the stats page")
    s.timings["registrator stack up (2 apps UP)"] = time.monotonic() - t
    try:
        yield s
    finally:
        (ARTIFACTS / "e2e-registrator-timings.txt").write_text(
            "".join(f"{k}: {v}\n" if isinstance(v, int) else f"{k}: {v:.1f}s\n" for k, v in s.timings.items())
        )
        logs = subprocess.run(
            [*compose_command(), "-p", PROJECT, "--profile", "registrator", "logs", "--no-color"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        ).stdout
        (ARTIFACTS / "e2e-registrator-compose.log").write_text(logs)
        s.compose("down", "-v", "--remove-orphans", timeout=300)


def test_apps_run_only_the_webapp_and_are_registered_by_labels(regstack: RegStack):
    for app in regstack.containers("app"):
        commands = " ".join(row[-1] for row in app.top()["Processes"])
        assert "app.py" in commands and "consul" not in commands and "supervisord" not in commands
    ids = regstack.passing()
    assert len(ids) == 2 and all(sid.startswith("disco-reg:registrator:") for sid in ids)
    reg = regstack.containers("registrator")[0]
    rows = reg.top(ps_args="-eo pid,user,args")["Processes"]  # the engine needs the PID column
    workers = [(user, args) for _pid, user, args in rows if "consul agent" in args or "disco registrator" in args]
    assert len(workers) >= 2 and all(user != "root" for user, _ in workers), rows


def test_scale_2_5_2_under_a_steady_client_without_failures(regstack: RegStack):
    with SteadyClient(regstack.lb, limit=240) as client:
        wait_until(lambda: client.ok > 20, 30, what="the client running")
        t = time.monotonic()
        regstack.scale(5)
        wait_until(lambda: len(regstack.up_servers()) == 5, 120, interval=0.1, what="5 apps UP")
        regstack.timings["registrator: scale 2 -> 5 (all UP)"] = time.monotonic() - t
        t = time.monotonic()
        regstack.scale(2)
        wait_until(
            lambda: len(regstack.passing()) == 2 and len(regstack.servers()) == 2, 120, interval=0.1, what="back to 2"
        )
        regstack.timings["registrator: scale 5 -> 2 (3 removed)"] = time.monotonic() - t
        ok_before = client.ok
        wait_until(lambda: client.ok > ok_before + 20, 30, what="requests after the scale-down")
    regstack.timings["registrator: requests during scaling"] = client.ok
    regstack.timings["registrator: failed requests"] = len(client.failures)
    assert not client.failures, client.failures[:10]
