"""The output directory's filesystem full (found by the soak, issue 19, seed 1128438247).

A config fits, its last good copy does not: the watcher applied the change, then its idle-time
save of OUTPUT.last-good failed with ENOSPC, and that error ended the watcher ("disco: error:
cannot write ...last-good: No space left on device").  Now the failure is logged once, the
loop goes on applying changes, and the copy is saved once there is space again.

Needs a filesystem we can fill: a 1 MB tmpfs, which takes root (skipped otherwise).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from discovery.haproxy.runtime import RuntimeAPI
from testkit import ConsulAgent, wait_until

from .conftest import Stack
from .test_divergence import webapp

PAGE = 4096


class OutputOnTmpfs(Stack):
    @property
    def output(self) -> Path:
        return self.workdir / "out" / "haproxy.cfg"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(out)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (root needed): {done.stderr.strip()}")
    yield out
    subprocess.run(["umount", "-l", str(out)], check=False)


def fill_leaving(directory: Path, pages: int) -> Path:
    """Fill the filesystem to the last page, then give back ``pages`` pages."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, PAGE):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
        os.ftruncate(fd, os.fstat(fd).st_size - pages * PAGE)
    finally:
        os.close(fd)
    return filler


@dataclass
class Full:
    """The stack every test here starts: the output on a small tmpfs, HAProxy serving web-1, live apply."""

    stack: OutputOnTmpfs
    api: RuntimeAPI
    disk: Path
    port: int

    def register(self, n: int) -> None:
        self.stack.consul.put(
            "/v1/agent/service/register", {"ID": f"web-{n}", "Name": "web", "Address": "127.0.0.1", "Port": self.port}
        )

    @property
    def watch_output(self) -> str:
        assert self.stack.watch is not None
        return self.stack.watch.output()


@pytest.fixture
def full(consul: ConsulAgent, tmp_path: Path, small_disk: Path) -> Iterator[Full]:
    stack = OutputOnTmpfs(consul, tmp_path)
    try:
        setup = Full(stack, RuntimeAPI(stack.admin_socket), small_disk, webapp(stack, "app"))
        setup.register(1)
        wait_until(lambda: consul.passing("web") == ["web-1"], 10, what="web-1 passing")
        stack.start_balancer(live=True)
        wait_until(lambda: set(setup.api.servers("web")) == {"web-1"}, 20, what="HAProxy serving web-1")
        yield setup
    finally:
        stack.close()


def test_a_last_good_copy_the_disk_cannot_take_does_not_stop_the_watcher(full: Full):
    stack, api = full.stack, full.api
    # One server added live: its line's form is checked once, later adds of that form are not
    # (so an apply writes the new config and nothing else).
    full.register(2)
    wait_until(lambda: set(api.servers("web")) == {"web-1", "web-2"}, 20, what="HAProxy serving web-2")
    assert stack.output.stat().st_size <= PAGE  # one page now; the changes below make it two

    # Two pages free: the first config of two pages fits, then its last good copy does not.
    filler = fill_leaving(full.disk, 2)
    many = range(3, 3 + (6000 - stack.output.stat().st_size) // 110)  # about 6 kB: two pages
    for n in many:
        full.register(n)
    wait_until(lambda: "last-good: No space left" in full.watch_output, 30, what="the failed save logged")

    # Space again: the watcher is still there, every change goes out and the copy catches up.
    filler.unlink()
    names = {f"web-{n}" for n in (1, 2, *many)}
    wait_until(lambda: set(api.servers("web")) == names, 30, what="HAProxy running every new server")
    wait_until(
        lambda: stack.output.with_name("haproxy.cfg.last-good").read_text() == stack.output.read_text(),
        30,
        what="the last good copy saved",
    )
    assert PAGE < stack.output.stat().st_size <= 2 * PAGE
    assert stack.watch is not None and stack.watch.alive()
    assert full.watch_output.count("last-good: No space left") == 1


def test_changes_while_the_disk_is_full_do_not_back_the_retry_off(full: Full):
    """Found by the soak (seed 824473741: a disk full for 4.7 s, the change out 30 s after space
    returned).  Each change that arrived while the file could not be written started a pass that
    failed and doubled the retry delay, so a few changes pushed the retry to its 30 s ceiling.
    Only a failed retry backs off now: the change goes out within seconds of space returning."""
    filler = fill_leaving(full.disk, 0)
    for n in range(2, 10):  # eight changes, each seen while nothing can be written
        full.register(n)
        seen = f"{n} servers"
        wait_until(lambda seen=seen: seen in full.watch_output, 10, what=f"the watcher rendering {seen}")
    last = "rendered 1 backends, 9 servers"
    wait_until(
        lambda: "No space left" in full.watch_output.split(last, 1)[-1],
        10,
        what="the last change's apply failed",
    )
    filler.unlink()
    names = {f"web-{n}" for n in range(1, 10)}
    wait_until(lambda: set(full.api.servers("web")) == names, 8, what="the changes out within 8 s of space returning")
