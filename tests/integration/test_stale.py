"""``disco watch --stale`` against a follower of a real three-server cluster whose leader is killed:
the watchers' blocking queries stay with the follower (nothing is forwarded to the dead leader,
so nothing fails), and the first change after the election is rendered."""

from __future__ import annotations

import json
import time
from pathlib import Path

from testkit import DISCO, ConsulCluster, Proc, take_port, wait_until


def register(server, n: int) -> None:
    server.put(
        "/v1/agent/service/register",
        {
            "Name": "web",
            "ID": f"web-{n}",
            "Address": f"127.0.3.{n}",
            "Port": 8000 + n,
            "Check": {"CheckID": f"service:web-{n}", "TTL": "1h", "Status": "passing"},
        },
    )


def rendered_since(proc: Proc, offset: int) -> str:
    return proc.output()[offset:]


def test_stale_watchers_on_a_follower_go_on_through_a_leader_kill(tmp_path: Path):
    cluster = ConsulCluster(tmp_path / "cluster")
    watchers: dict[str, Proc] = {}
    try:
        cluster.start()
        leader = cluster.leader()
        follower = cluster.followers()[0]
        for n in (1, 2, 3):
            register(follower, n)
        for mode in ("service", "catalog"):
            watchers[mode] = Proc(
                [
                    *DISCO,
                    "watch",
                    "--service",
                    "web",
                    "--output",
                    str(tmp_path / "unused.cfg"),
                    "--dry-run",
                    "--check-cmd",
                    "true",
                    "--watch-mode",
                    mode,
                    "--stale",
                    "--max-stale",
                    "2s",
                    "--consul-addr",
                    follower.url,
                    "--log-format",
                    "json",
                    "--set",
                    f"frontend_port={take_port()}",
                    "--set",
                    "bind_address=127.0.0.1",
                ],
                tmp_path / f"watch-{mode}.log",
            )
        for proc in watchers.values():
            wait_until(lambda p=proc: all(f"web-{n}" in p.output() for n in (1, 2, 3)), 30, what="3 rendered")
        offsets = {mode: len(proc.output()) for mode, proc in watchers.items()}

        leader.kill()
        killed = time.monotonic()
        wait_until(lambda: follower.leader() not in ("", leader.raft_address), 60, interval=0.2, what="a new leader")
        election = time.monotonic() - killed
        register(follower, 4)  # through a surviving server, once the cluster can write again
        registered = time.monotonic()
        for mode, proc in watchers.items():
            wait_until(
                lambda p=proc, m=mode: "web-4" in rendered_since(p, offsets[m]),
                30,
                what=f"web-4 rendered by the {mode} watcher",
            )
        applied = time.monotonic() - registered

        for mode, proc in watchers.items():
            assert proc.alive(), proc.output()[-2000:]
            lines = [
                json.loads(line) for line in rendered_since(proc, offsets[mode]).splitlines() if line.startswith("{")
            ]
            trouble = [line["message"] for line in lines if line["level"] in ("WARNING", "ERROR")]
            assert trouble == [], f"{mode}: {trouble}"  # a forwarded read would have failed with the leader
        print(
            f"election {election:.1f}s; web-4 rendered by both watchers {applied * 1000:.0f} ms after its registration"
        )
    finally:
        for proc in watchers.values():
            proc.stop()
        cluster.stop()
