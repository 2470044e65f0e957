"""`disco registrator` across a real restart of the Docker engine it follows (issue 19's last fault).

The engine is a private dockerd of this test's own (testkit/dockerd.py: its own data root, exec root,
containerd and socket; the machine's engine, which other suites use, is never restarted).  Containers
are started and removed just before the engine stops and just after it is back; those with a restart
policy come back with the engine, the others stay down.  Afterwards the agent's registrations must be
exactly the running containers, within a deadline, as the soak's checker waits for agreement.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from discovery.registration.labels import container_of
from testkit import DISCO, ConsulAgent, Proc, wait_until
from testkit.dockerd import BASE_IMAGE, PrivateDockerd, private_dockerd_missing

LABELS = {"disco.service": "web", "disco.port": "8080", "disco.check": "none"}
AGREE_WITHIN = 30.0


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[PrivateDockerd]:
    why = private_dockerd_missing()
    if why:
        pytest.skip(why)
    if os.environ.get("DISCO_PRIVATE_DOCKERD") != "1":
        # A second dockerd on the host deletes the host's docker0 at start (seen here: the main engine's
        # builds then fail with "could not find bridge docker0" until it is restarted), so `make test`,
        # which builds images on the main engine next, does not run it.
        pytest.skip(
            "a private dockerd removes the host's docker0: run with DISCO_PRIVATE_DOCKERD=1, then restart dockerd"
        )
    dockerd = PrivateDockerd(tmp_path)
    try:
        dockerd.start()
        dockerd.load(BASE_IMAGE)
        dockerd.docker("network", "create", "apps")
        yield dockerd
    finally:
        dockerd.close()


def start(client: Any, name: str, always: bool) -> Any:
    return client.containers.run(
        BASE_IMAGE,
        ["sleep", "infinity"],
        detach=True,
        name=name,
        labels=LABELS,
        network="apps",
        restart_policy={"Name": "always"} if always else None,
    )


def running(client: Any) -> set[str]:
    return {c.id[:12] for c in client.containers.list(filters={"label": "disco.service=web"})}


def registered(consul: ConsulAgent) -> set[str]:
    return {container_of(sid) for sid in consul.agent_services() if sid.startswith("disco-reg:")}


def test_registrations_equal_the_running_containers_after_a_real_engine_restart(
    engine: PrivateDockerd, consul: ConsulAgent, tmp_path: Path
):
    client = engine.client()
    reg = Proc(
        [*DISCO, "registrator", "--consul-addr", consul.url, "--network", "apps", "--resync", "5m"],
        tmp_path / "registrator.log",
        env={"DOCKER_HOST": engine.host},
    )
    try:
        kept, gone, back = start(client, "kept", True), start(client, "gone", False), start(client, "back", True)
        wait_until(lambda: registered(consul) == running(client) == {c.id[:12] for c in (kept, gone, back)}, 30)
        # Just before the engine stops: one removed, one started (with a restart policy).
        gone.remove(force=True)
        late = start(client, "late", True)
        down = engine.restart()  # every container stops with the engine; "always" ones come back with it
        client = engine.client()
        # Just after it is back: one started (no restart policy), one removed.
        fresh = start(client, "fresh", False)
        client.containers.get(back.id).remove(force=True)
        expected = {kept.id[:12], late.id[:12], fresh.id[:12]}
        wait_until(lambda: running(client) == expected, 30, what="the containers with a restart policy back")
        began = time.monotonic()
        with contextlib.suppress(AssertionError):
            wait_until(lambda: registered(consul) == running(client), AGREE_WITHIN, interval=0.1)
        agreed = time.monotonic() - began
        assert registered(consul) == running(client) == expected, (
            f"after the engine restart (down {down:.1f}s): agent {sorted(registered(consul))}, "
            f"running {sorted(running(client))}\n{reg.output()[-3000:]}"
        )
        assert reg.alive(), reg.output()[-3000:]
        print(f"engine down {down:.1f}s; registrations agreed {agreed:.2f}s after the engine was back")
    finally:
        reg.stop()
