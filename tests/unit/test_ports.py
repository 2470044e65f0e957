"""testkit.ports: reserved ports that no concurrent run, benchmark or listening program shares."""

from __future__ import annotations

import socket
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

import testkit
from testkit.ports import (
    PUBLISHED,
    PortAllocator,
    PortsExhausted,
    allocator,
    bindable,
    default_range,
)

REPO = Path(__file__).resolve().parents[2]

# A child process: an allocator over RANGE in LOCK_DIR, seeded like its sibling so both start at
# the same port and contend for every one; it prints what it got, then holds it until stdin closes.
CHILD = """
import random, sys
from pathlib import Path
from testkit.ports import PortAllocator, PortsExhausted
low, high, lock_dir, count = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
a = PortAllocator((low, high), lock_dir, rng=random.Random(7))
got = []
try:
    for _ in range(count):
        got.append(a.take())
except PortsExhausted:
    pass
print(" ".join(map(str, got)), flush=True)
sys.stdin.read()
"""


def child(low: int, high: int, lock_dir: Path, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(low), str(high), str(lock_dir), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def test_public_names_exist_once():
    assert all(hasattr(testkit, name) for name in testkit.__all__)
    assert len(set(testkit.__all__)) == len(testkit.__all__)


def test_two_processes_never_get_the_same_port(tmp_path):
    low, high = default_range()
    low = min(low + 1000, high - 200)  # 200 ports both processes ask 150 of, from the same starting point
    high = low + 199
    first, second = child(low, high, tmp_path, 150), child(low, high, tmp_path, 150)
    try:
        a = {int(p) for p in first.stdout.readline().split()}  # type: ignore[union-attr]
        b = {int(p) for p in second.stdout.readline().split()}  # type: ignore[union-attr]
    finally:
        for proc in (first, second):
            proc.communicate("", timeout=30)
    assert a.isdisjoint(b)
    assert a and b and all(low <= p <= high for p in a | b)
    # Together they took every port in the range that could be bound: the locks, not chance, split it.
    assert len(a | b) >= 200 - sum(not bindable(p) for p in range(low, high + 1))


def test_a_port_is_free_again_once_its_holder_exits(tmp_path):
    port = allocator().take()  # reserved in the shared directory: no other run binds it meanwhile
    holder = child(port, port, tmp_path, 1)
    assert holder.stdout.readline().split() == [str(port)]  # type: ignore[union-attr]
    with pytest.raises(PortsExhausted):
        PortAllocator((port, port), tmp_path).take()  # held by the child
    holder.communicate("", timeout=30)
    assert PortAllocator((port, port), tmp_path).take() == port


def test_two_allocators_in_one_process_never_share(tmp_path):
    low = allocator().take_block(20)[0]
    one, two = (PortAllocator((low, low + 19), tmp_path) for _ in range(2))
    got = [one.take(), two.take(), one.take(), two.take()]
    assert len(set(got)) == 4
    with pytest.raises(PortsExhausted):
        PortAllocator((got[0], got[0]), tmp_path).take()
    one.release(got[0])
    assert got[0] not in one.held
    assert PortAllocator((got[0], got[0]), tmp_path).take() == got[0]


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_DGRAM])
@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0"])
def test_a_port_in_use_is_skipped(tmp_path, kind, address):
    block = allocator().take_block(3)  # reserved: only the socket below binds the middle one
    with socket.socket(socket.AF_INET, kind) as busy:
        busy.bind((address, block[1]))
        if kind == socket.SOCK_STREAM:
            busy.listen()
        alloc = PortAllocator((block[0], block[2]), tmp_path)
        assert {alloc.take(), alloc.take()} == {block[0], block[2]}
        with pytest.raises(PortsExhausted):
            alloc.take()
        assert block[1] not in alloc.held  # its lock was given back, not kept by the failed attempt


def test_published_ports_skip_one_in_use_on_another_address(tmp_path):
    block = allocator().take_block(2)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", block[0]))
        busy.listen()
        assert PortAllocator((block[0], block[1]), tmp_path).take(PUBLISHED) == block[1]


def test_blocks_are_consecutive_and_all_bindable_together():
    block = allocator().take_block(5, PUBLISHED)
    assert block == list(range(block[0], block[0] + 5))
    assert all(bindable(port, PUBLISHED) for port in block)
    with ExitStack() as stack:  # all of them listening at once, as a stack of servers would
        for port in block:
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", port))
            sock.listen()


def test_a_block_steps_over_a_port_in_use(tmp_path):
    block = allocator().take_block(6)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", block[2]))
        busy.listen()
        alloc = PortAllocator((block[0], block[5]), tmp_path)
        assert alloc.take_block(3) == block[3:]  # the only run of three without the busy port
        with pytest.raises(PortsExhausted):
            alloc.take_block(3)
        assert alloc.take_block(2) == block[:2]


def test_the_range_lies_below_the_ephemeral_one(monkeypatch):
    monkeypatch.delenv("DISCO_TEST_PORT_RANGE", raising=False)
    assert default_range((32768, 60999)) == (20000, 32000)
    assert default_range((25000, 60999)) == (20000, 24999)
    assert default_range((15000, 60999)) == (10000, 14999)  # the larger gap beside it
    assert default_range((1024, 50000)) == (50001, 65535)
    with pytest.raises(PortsExhausted):
        default_range((1024, 65535))
    monkeypatch.setenv("DISCO_TEST_PORT_RANGE", "40000-40100")
    assert default_range((32768, 60999)) == (40000, 40100)


def test_this_machine_hands_out_no_ephemeral_port():
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    port = allocator().take()
    assert not low <= port <= high
