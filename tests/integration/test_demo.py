"""`disco demo`: the whole topology under one real supervisord, then Ctrl-C leaves nothing running;
a port in use stops it before anything starts; a program that dies is named with its log."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import requests

from testkit import DISCO, Proc, instances_reached, take_port, take_ports, wait_until


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def held_listener() -> socket.socket:
    """A socket this test binds to a port of its own (port 0) and listens on, as any server would."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_demo_exits_at_once_naming_a_port_in_use_and_its_holder(tmp_path):
    with held_listener() as held:
        port = held.getsockname()[1]
        t0 = time.monotonic()
        done = subprocess.run(
            [*DISCO, "demo", "--lb-port", str(port), "--workdir", str(tmp_path / "demo")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        elapsed = time.monotonic() - t0
    assert done.returncode == 2, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("disco: error: ") and f"port {port} " in lines[0], lines[0]
    assert "load balancer" in lines[0] and "--lb-port" in lines[0], lines[0]
    assert f"(pid {os.getpid()})" in lines[0], lines[0]  # the holder, found through /proc
    assert elapsed < 10, elapsed
    assert not (tmp_path / "demo" / "supervisord.conf").exists()  # nothing was started


def test_demo_names_a_program_that_dies_and_its_log(tmp_path):
    # An `haproxy` that validates configs (the real one does `-c`) but cannot start: supervisord gives
    # up on it (FATAL); the demo must say so instead of waiting for traffic that never comes.
    fake = tmp_path / "bin" / "haproxy"
    fake.parent.mkdir()
    real = shutil.which("haproxy")
    fake.write_text(
        f'#!/bin/sh\nfor a; do [ "$a" = -c ] && exec {real} "$@"; done\n'
        'echo "haproxy: cannot bind socket (fake)" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    lb, stats, consul = take_port(), take_port(), take_port()
    workdir = tmp_path / "demo"
    demo = Proc(
        [
            *DISCO,
            "demo",
            "--webapps",
            "1",
            "--lb-port",
            str(lb),
            "--stats-port",
            str(stats),
            "--consul-port",
            str(consul),
            "--dashboard-port",
            str(take_port()),
            "--first-webapp-port",
            str(take_ports(2)[0]),
            "--workdir",
            str(workdir),
            "--consul-ports",
            ",".join(map(str, take_ports(3))),
        ],
        tmp_path / "demo.log",
        env={"PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"},
    )
    try:
        assert demo.popen.wait(60) == 1, demo.output()
        errors = [line for line in demo.output().splitlines() if line.startswith("disco: error:")]
        assert len(errors) == 1, demo.output()
        assert "haproxy is FATAL" in errors[0] and str(workdir / "logs" / "haproxy.log") in errors[0], errors[0]
        assert "cannot bind socket (fake)" in errors[0], errors[0]  # its last log line
        leftovers = subprocess.run(["pgrep", "-af", str(workdir)], capture_output=True, text=True).stdout
        assert leftovers == "", leftovers
    finally:
        demo.stop()


def test_demo_serves_three_webapps_and_ctrl_c_stops_everything(tmp_path):
    ports = {"lb": take_port(), "stats": take_port(), "consul": take_port(), "dashboard": take_port()}
    first_webapp = take_ports(4)[0]  # three web instances, then api-1
    webapp_ports = [first_webapp, first_webapp + 1, first_webapp + 2, first_webapp + 3]
    workdir = tmp_path / "demo"
    demo = Proc(
        [
            *DISCO,
            "demo",
            "--webapps",
            "3",
            "--lb-port",
            str(ports["lb"]),
            "--stats-port",
            str(ports["stats"]),
            "--consul-port",
            str(ports["consul"]),
            "--dashboard-port",
            str(ports["dashboard"]),
            "--first-webapp-port",
            str(first_webapp),
            "--workdir",
            str(workdir),
            "--consul-ports",
            ",".join(map(str, take_ports(3))),
        ],
        tmp_path / "demo.log",
    )
    try:
        wait_until(lambda: "Press Ctrl-C" in demo.output(), 90, interval=0.2, what="the demo to be ready")
        out = demo.output()
        assert f"http://127.0.0.1:{ports['lb']}/" in out and f"http://127.0.0.1:{ports['consul']}/ui/" in out
        assert f"http://127.0.0.1:{ports['dashboard']}/" in out  # the dashboard, beside the stats page
        assert "<title>disco</title>" in requests.get(f"http://127.0.0.1:{ports['dashboard']}/", timeout=3).text
        assert set(instances_reached(f"http://127.0.0.1:{ports['lb']}/", 12)) == {"web-1", "web-2", "web-3"}

        def api_answer() -> requests.Response | None:
            response = requests.get(f"http://127.0.0.1:{ports['lb']}/api/hello", timeout=3)
            return response if response.headers.get("X-Instance") == "api-1" else None

        api = wait_until(api_answer, 30, what="api-1 answering under /api")
        assert api.headers["X-Path"] == "/hello"  # strip=/api
        stats = requests.get(f"http://127.0.0.1:{ports['stats']}/", timeout=3).text
        assert all(f"web-{n}" in stats for n in (1, 2, 3))
        assert requests.get(f"http://127.0.0.1:{ports['consul']}/ui/", timeout=3).status_code == 200
        catalog = requests.get(f"http://127.0.0.1:{ports['consul']}/v1/health/service/web?passing=1", timeout=3)
        assert sorted(e["Service"]["ID"] for e in catalog.json()) == ["web-1", "web-2", "web-3"]
        assert all(listening(p) for p in [*ports.values(), *webapp_ports])
        for sock in ("master.sock", "admin.sock"):  # HAProxy's control sockets: owner only
            assert (workdir / sock).stat().st_mode & 0o777 == 0o600

        # The override the demo suggests: web-2 drains (no new requests) and comes back when the key goes.
        override = f"http://127.0.0.1:{ports['consul']}/v1/kv/disco/overrides/web"
        assert f"curl -X PUT {override}" in out
        requests.put(override, data='{"drain": ["web-2"]}', timeout=3).raise_for_status()
        wait_until(
            lambda: "web-2" not in instances_reached(f"http://127.0.0.1:{ports['lb']}/", 6), 15, what="web-2 drained"
        )
        requests.delete(override, timeout=3).raise_for_status()
        wait_until(lambda: "web-2" in instances_reached(f"http://127.0.0.1:{ports['lb']}/", 6), 15, what="web-2 back")

        # HAProxy's master killed: supervisord starts it again on the current file, and changes
        # still reach the new process.
        ctl = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(workdir / "supervisord.conf")]
        master = int(subprocess.run([*ctl, "pid", "haproxy"], capture_output=True, text=True).stdout.strip())
        os.kill(master, signal.SIGKILL)
        lb = f"http://127.0.0.1:{ports['lb']}/"
        wait_until(
            lambda: (
                int(subprocess.run([*ctl, "pid", "haproxy"], capture_output=True, text=True).stdout.strip() or 0)
                not in (0, master)
            ),
            30,
            what="HAProxy restarted",
        )
        wait_until(
            lambda: set(instances_reached(lb, 9)) == {"web-1", "web-2", "web-3"},
            30,
            what="all three served by the new HAProxy",
        )
        subprocess.run([*ctl, "stop", "register-2"], capture_output=True, check=True, timeout=30)
        wait_until(lambda: set(instances_reached(lb, 9)) == {"web-1", "web-3"}, 15, what="web-2 removed")

        demo.popen.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground command
        assert demo.popen.wait(60) == 0
        for pattern in (str(workdir), f"127.0.0.1:{ports['consul']}"):  # every program names one of these
            leftovers = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
            assert leftovers == "", leftovers
        assert not any(listening(p) for p in [*ports.values(), *webapp_ports])
    finally:
        demo.stop()
