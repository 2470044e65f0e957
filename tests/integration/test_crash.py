"""The watcher killed with SIGKILL at random moments while it applies: the config on disk is
always complete and valid (`haproxy -c`), and a restarted watcher cleans up after the killed one."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time

from testkit import DISCO, ConsulAgent, Proc


def test_sigkill_at_random_moments_never_leaves_a_partial_or_invalid_config(consul: ConsulAgent, tmp_path):
    output = tmp_path / "haproxy.cfg"
    stop = threading.Event()

    def churn() -> None:  # bounded: until the test ends, at most 5 minutes
        n, end = 0, time.monotonic() + 300
        while not stop.is_set() and time.monotonic() < end:
            consul.put("/v1/agent/service/register", {"Name": "web", "ID": f"w{n % 40}", "Address": "127.0.0.1",
                                                      "Port": 20000 + n % 40})
            if n % 3 == 0:
                consul.put(f"/v1/agent/service/deregister/w{(n * 7) % 40}")
            n += 1
            stop.wait(0.005)

    churner = threading.Thread(target=churn, daemon=True)
    churner.start()
    rng = random.Random(1234)
    kills = checked = 0
    try:
        for _ in range(100):
            watch = Proc([*DISCO, "watch", "--service", "web", "--output", str(output), "--wait", "0ms:10ms",
                          "--consul-addr", consul.url, "--set", "frontend_port=18080", "--set", "stats_port=18081"],
                         tmp_path / "watch.log")
            time.sleep(rng.uniform(0.3, 0.9))  # python start-up, then applies every few milliseconds
            watch.signal(signal.SIGKILL)
            watch.stop()  # reaps it and closes its log
            kills += 1
            if output.exists():
                result = subprocess.run(["haproxy", "-c", "-f", str(output)], capture_output=True, text=True)
                assert result.returncode == 0, result.stderr
                assert output.read_text().rstrip().endswith("rise 1") or "server " not in output.read_text()
                checked += 1
    finally:
        stop.set()
        churner.join(10)
    log = (tmp_path / "watch.log").read_text()
    assert kills == 100 and checked >= 90
    assert log.count("applied 1 backends") >= 100  # the kills did land among applies
    leftovers = list(tmp_path.glob(".haproxy.cfg.*.tmp"))
    assert len(leftovers) <= 1  # at most the last killed watcher's; every start removed the older ones
