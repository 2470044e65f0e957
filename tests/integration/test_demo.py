"""`disco demo`: the whole topology under one real supervisord, then Ctrl-C leaves nothing running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import requests

from testkit import DISCO, Proc, instances_reached, take_port, take_ports, wait_until


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_demo_serves_three_webapps_and_ctrl_c_stops_everything(tmp_path):
    ports = {"lb": take_port(), "stats": take_port(), "consul": take_port()}
    first_webapp = take_ports(3)[0]
    webapp_ports = [first_webapp, first_webapp + 1, first_webapp + 2]
    workdir = tmp_path / "demo"
    demo = Proc([*DISCO, "demo", "--webapps", "3", "--lb-port", str(ports["lb"]), "--stats-port",
                 str(ports["stats"]), "--consul-port", str(ports["consul"]), "--first-webapp-port",
                 str(first_webapp), "--workdir", str(workdir)], tmp_path / "demo.log")
    try:
        wait_until(lambda: "Press Ctrl-C" in demo.output(), 90, interval=0.2, what="the demo to be ready")
        out = demo.output()
        assert f"http://127.0.0.1:{ports['lb']}/" in out and f"http://127.0.0.1:{ports['consul']}/ui/" in out
        assert set(instances_reached(f"http://127.0.0.1:{ports['lb']}/", 12)) == {"web-1", "web-2", "web-3"}
        stats = requests.get(f"http://127.0.0.1:{ports['stats']}/", timeout=3).text
        assert all(f"web-{n}" in stats for n in (1, 2, 3))
        assert requests.get(f"http://127.0.0.1:{ports['consul']}/ui/", timeout=3).status_code == 200
        catalog = requests.get(f"http://127.0.0.1:{ports['consul']}/v1/health/service/web?passing=1", timeout=3)
        assert sorted(e["Service"]["ID"] for e in catalog.json()) == ["web-1", "web-2", "web-3"]
        assert all(listening(p) for p in [*ports.values(), *webapp_ports])
        for sock in ("master.sock", "admin.sock"):  # HAProxy's control sockets: owner only
            assert (workdir / sock).stat().st_mode & 0o777 == 0o600

        # HAProxy's master killed: supervisord starts it again on the current file, and changes
        # still reach the new process.
        ctl = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(workdir / "supervisord.conf")]
        master = int(subprocess.run([*ctl, "pid", "haproxy"], capture_output=True, text=True).stdout.strip())
        os.kill(master, signal.SIGKILL)
        lb = f"http://127.0.0.1:{ports['lb']}/"
        wait_until(lambda: int(subprocess.run([*ctl, "pid", "haproxy"], capture_output=True, text=True)
                               .stdout.strip() or 0) not in (0, master), 30, what="HAProxy restarted")
        wait_until(lambda: set(instances_reached(lb, 9)) == {"web-1", "web-2", "web-3"}, 30,
                   what="all three served by the new HAProxy")
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
