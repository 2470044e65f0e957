"""A real HAProxy refusing a reload: the config parses (`haproxy -c` accepts it) but the master
cannot start a worker with it, because a port it must bind is held by another program.

What a user checks: the watcher says so, HAProxy keeps serving with the old config, and the
file on disk is the last good one again (so the next reload, by anyone, loads a working config).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from discovery.errors import ReloadError
from discovery.haproxy.master import MasterSocket
from testkit import REPO, Proc, instances_reached, take_port, wait_until

from .conftest import Stack

CONFIG = """global
    log stdout format raw local0 notice
    httpclient.ssl.verify none
defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend http
    bind 127.0.0.1:{lb}
    http-request return status 200 content-type text/plain string "{version}"
{extra}"""


def answer(port: int) -> str:
    return requests.get(f"http://127.0.0.1:{port}/", timeout=3, headers={"Connection": "close"}).text


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port another program listens on, so HAProxy cannot bind it."""
    port = take_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield port


def test_master_socket_reports_a_reload_the_real_master_refuses(tmp_path: Path, held_port: int):
    cfg, master, lb = tmp_path / "haproxy.cfg", tmp_path / "master.sock", take_port()
    cfg.write_text(CONFIG.format(lb=lb, version="v1", extra=""))
    haproxy = Proc(["haproxy", "-W", "-S", str(master), "-f", str(cfg)], tmp_path / "haproxy.log")
    try:
        wait_until(lambda: answer(lb) == "v1", 10, what="HAProxy serving v1")
        sock = MasterSocket(master)
        before = sock.state()
        cfg.write_text(CONFIG.format(lb=lb, version="v2", extra=f"listen blocked\n    bind 127.0.0.1:{held_port}\n"))
        assert subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True).returncode == 0
        with pytest.raises(ReloadError, match="refused"):
            sock.reload()
        after = sock.state()
        assert (after.reloads, after.failed) == (before.reloads + 1, before.failed + 1)
        assert after.workers == before.workers  # the old worker keeps serving
        assert answer(lb) == "v1"
        cfg.write_text(CONFIG.format(lb=lb, version="v3", extra=""))  # fixed: the same master takes it
        assert sock.reload().startswith("new worker")
        wait_until(lambda: answer(lb) == "v3", 10, what="HAProxy serving v3")
    finally:
        haproxy.stop()


def test_watcher_rolls_back_when_haproxy_refuses_the_reload(stack: Stack, held_port: int, tmp_path: Path):
    template = tmp_path / "haproxy.cfg.j2"
    shutil.copy(REPO / "discovery/templates/haproxy.cfg.j2", template)
    plain = stack.watch_args
    stack.watch_args = lambda *extra: plain("--template", str(template), *extra)  # type: ignore[method-assign]
    stack.add_webapp("web-1")
    wait_until(lambda: stack.consul.passing("web") == ["web-1"], 20, what="web-1 passing")
    stack.start_balancer()
    assert stack.watch is not None
    wait_until(lambda: "applied" in stack.watch.output(), 30, what="the watcher's first pass")
    wait_until(lambda: set(instances_reached(stack.lb, 6)) == {"web-1"}, 20, what="web-1 served")
    good = stack.output.read_text()
    before = MasterSocket(stack.master_socket).state()

    # An edit HAProxy's own check accepts (it does not bind), but the master cannot load.
    template.write_text(template.read_text() + f"\nlisten blocked\n    bind 127.0.0.1:{held_port}\n")
    wait_until(lambda: "reload failed" in stack.watch.output(), 60, interval=0.1, what="the refusal reported")

    out = stack.watch.output()
    assert "HAProxy refused the new config on reload" in out and "last good config restored" in out
    assert stack.output.read_text() == good  # the file describes what HAProxy runs
    assert not list(tmp_path.glob(".haproxy.cfg.*.tmp"))
    after = MasterSocket(stack.master_socket).state()
    assert after.failed > before.failed and after.workers == before.workers
    assert set(instances_reached(stack.lb, 12)) == {"web-1"}  # still served, by the old worker
    assert stack.watch.alive()

    # The template fixed: the next change goes out.
    template.write_text(template.read_text().split("\nlisten blocked")[0])
    stack.add_webapp("web-2")
    wait_until(lambda: set(instances_reached(stack.lb, 12)) == {"web-1", "web-2"}, 30, what="web-2 served")
    assert "listen blocked" not in stack.output.read_text()
