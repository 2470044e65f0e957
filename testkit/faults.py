"""The soak's faults.  Each takes the stack, the churn, the seeded random stream and the HAProxy-down
windows, does its harm, heals, and returns (a note for the log, extra seconds the checker may need,
the moment to count time to agreement from).  The churn runs meanwhile; the runner pauses it and
checks once a fault returns.
"""

from __future__ import annotations

import errno
import os
import random
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from .churn import Churn
from .dockerd import private_dockerd_missing
from .load import DownWindows
from .procs import wait_until
from .soak import BLOCKING_WAIT, GATE_GRACE, SoakStack

__all__ = ["DEFAULT_FAULTS", "FAULTS", "OPT_IN", "FaultResult"]


@dataclass(frozen=True)
class FaultResult:
    note: str
    deadline: float = 60.0  # how long the views may take to agree once the fault returns
    since: float | None = None  # count time to agreement from here (default: when the fault returned)
    problems: tuple[str, ...] = ()  # what the fault itself saw go wrong


Fault = Callable[[SoakStack, Churn, random.Random, DownWindows], FaultResult]


def watcher_kill(stack: SoakStack, churn: Churn, rng: random.Random, windows: DownWindows) -> FaultResult:
    """SIGKILL the watcher, half the time a few ms after it logged a render (inside an apply)."""
    inside = rng.random() < 0.5
    if inside:
        since = stack.watch_log_size()
        seen = stack.wait_for_log(" rendered ", since, 10.0)
        time.sleep(rng.uniform(0.0, 0.02))
        note = "inside an apply" if seen else "no render seen in 10 s"
    else:
        time.sleep(rng.uniform(0.0, 1.0))
        note = "between applies"
    stack.kill_watch()
    time.sleep(rng.uniform(0.2, 2.0))
    stack.start_watch()
    return FaultResult(note)


def leader_kill(stack: SoakStack, churn: Churn, rng: random.Random, windows: DownWindows) -> FaultResult:
    leader = stack.cluster.leader()
    leader.kill()
    time.sleep(rng.uniform(2.0, 5.0))
    leader.start()
    return FaultResult(f"killed {leader.name}")


def consul_down(stack: SoakStack, churn: Churn, rng: random.Random, windows: DownWindows) -> FaultResult:
    """Every server SIGKILLed, down for several seconds, then started again."""
    for server in stack.cluster.servers:
        server.kill()
    down = rng.uniform(4.0, 8.0)
    time.sleep(down)
    for server in stack.cluster.servers:
        server.start()
    return FaultResult(f"all servers down {down:.1f}s", deadline=90.0)


def agent_wipe(stack: SoakStack, churn: Churn, rng: random.Random, windows: DownWindows) -> FaultResult:
    """The client agent restarted without its data: its registrations are gone until registered again."""
    with churn.lock:
        # The proxy in front of the agent accepts and closes connections while the agent is down: the watcher
        # sees resets, as past the agent's connection limit, and must take them for the outage they are.
        stack.agent.restart_without_data()
        churn.resync()
    return FaultResult("client agent restarted without data")


def admin_socket_away(stack: SoakStack, churn: Churn, rng: random.Random, windows: DownWindows) -> FaultResult:
    """The runtime API socket moved away for a while (live changes fail: a reload must repair)."""
    moved = stack.paths.admin.with_name("admin.sock.away")
    try:
        stack.paths.admin.rename(moved)
    except FileNotFoundError:
        return FaultResult("no admin socket to move")
    away = rng.uniform(2.0, 6.0)
    time.sleep(away)
    if stack.paths.admin.exists():  # a reload bound a new one
        moved.unlink(missing_ok=True)
    else:
        moved.rename(stack.paths.admin)
    return FaultResult(f"admin socket away {away:.1f}s")


def haproxy_kill(stack: SoakStack, churn: Churn, rng: random.Random, windows: DownWindows) -> FaultResult:
    """Master and workers SIGKILLed, restarted from the file (half the time right after a render,
    so the restart races the watcher's write: the defect of issue 19)."""
    windows.begin()
    stack.kill_haproxy()
    if rng.random() < 0.5:
        stack.wait_for_log(" rendered ", stack.watch_log_size(), 5.0)
        note = "restarted as the watcher renders"
    else:
        time.sleep(rng.uniform(0.5, 3.0))
        note = "restarted after a pause"
    stack.paths.master.unlink(missing_ok=True)
    stack.paths.admin.unlink(missing_ok=True)
    stack.start_haproxy()
    windows.end()
    return FaultResult(note)


def template_edit(stack: SoakStack, churn: Churn, rng: random.Random, windows: DownWindows) -> FaultResult:
    """The template edited in place (atomically): a timeout changes, so every config changes."""
    text = stack.paths.template.read_text()
    old, new = ("timeout client 30s", "timeout client 31s")
    if old not in text:
        old, new = new, old
    tmp = stack.paths.template.with_name("haproxy.cfg.j2.tmp")
    tmp.write_text(text.replace(old, new))
    os.replace(tmp, stack.paths.template)
    time.sleep(rng.uniform(1.0, 3.0))
    return FaultResult(f"template: {new}")


def health_storm(stack: SoakStack, churn: Churn, rng: random.Random, windows: DownWindows) -> FaultResult:
    """Health flips on every churned webapp, several a second, for a few seconds."""
    end = time.monotonic() + rng.uniform(3.0, 6.0)
    flips = 0
    while time.monotonic() < end:
        _, fail = stack.webapps[rng.randrange(2, len(stack.webapps))]
        if fail.exists():
            fail.unlink()
        else:
            fail.touch()
        flips += 1
        time.sleep(rng.uniform(0.05, 0.3))
    if rng.random() < 0.5:
        churn.heal_all()
    return FaultResult(f"{flips} flips", deadline=60.0)


def half_open(stack: SoakStack, churn: Churn, rng: random.Random, windows: DownWindows) -> FaultResult:
    """The watcher's connections to its agent go silent without closing; a change follows at once.
    Its blocking queries must notice within their wait + a sixteenth + 5 s (their read timeout)."""
    assert stack.proxy is not None
    since = time.monotonic()
    silenced = stack.proxy.blackhole()
    with churn.lock:
        churn.step()
        churn.changes += 1
    # The read timeout, then the sanity gate may hold what it brings (a service's last instance
    # gone), then 10 s for a loaded machine and the apply.
    limit = BLOCKING_WAIT * 17 / 16 + 5 + GATE_GRACE + 10
    return FaultResult(f"{silenced} connections silenced", deadline=limit, since=since)


def full_disk(stack: SoakStack, churn: Churn, rng: random.Random, windows: DownWindows) -> FaultResult:
    """The output directory's filesystem fills up for a while: nothing half-written, HAProxy
    serves on, and the change goes out once there is space again."""
    if not stack.tmpfs:
        return FaultResult("skipped: no tmpfs (not root)")
    filler = stack.paths.out_dir / "filler"
    problems = []
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 1):  # to the last byte
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    full_for = rng.uniform(3.0, 8.0)
    end = time.monotonic() + full_for
    while time.monotonic() < end:
        done = subprocess.run(
            ["haproxy", "-c", "-q", "-f", str(stack.paths.output)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            problems.append(f"the file is not a valid config while the disk is full: {done.stderr.strip()[:300]}")
            break
        time.sleep(0.5)
    filler.unlink()
    return FaultResult(f"disk full {full_for:.1f}s", deadline=90.0, problems=tuple(problems))


def dockerd_restart(stack: SoakStack, churn: Churn, rng: random.Random, windows: DownWindows) -> FaultResult:
    """A real restart of the Docker engine ``disco registrator`` follows (a private dockerd: testkit/dockerd.py),
    containers started and removed just before and just after; then the agent's registrations must be the
    running containers.  Opt-in (root, and the base image moved into the private engine): ``--faults``."""
    why = private_dockerd_missing()
    if why:
        return FaultResult(f"skipped: {why}")
    docked = stack.docked
    docked.start()
    before = docked.running()
    if before and rng.random() < 0.5:
        docked.remove(rng.choice(before))
    docked.run_container(always=rng.random() < 0.7)
    assert docked.engine is not None
    down = docked.engine.restart()
    docked.run_container(always=rng.random() < 0.5)
    after = docked.running()
    if len(after) > 1 and rng.random() < 0.5:
        docked.remove(rng.choice(after))
    problems: list[str] = []
    try:
        wait_until(lambda: docked.registered() == docked.running(), 60, interval=0.2, what="registrations")
    except AssertionError:
        problems.append(
            f"60 s after the engine restart, the agent held {docked.registered()} for running {docked.running()}"
        )
    return FaultResult(f"engine down {down:.1f}s, {len(docked.running())} containers", problems=tuple(problems))


FAULTS: dict[str, Fault] = {
    "watcher-kill": watcher_kill,
    "leader-kill": leader_kill,
    "consul-down": consul_down,
    "agent-wipe": agent_wipe,
    "admin-socket": admin_socket_away,
    "haproxy-kill": haproxy_kill,
    "template-edit": template_edit,
    "health-storm": health_storm,
    "half-open": half_open,
    "full-disk": full_disk,
    "dockerd-restart": dockerd_restart,
}
#: Faults a soak runs only when asked (``--faults``): they need more than the default soak's stack.
OPT_IN = frozenset({"dockerd-restart"})
DEFAULT_FAULTS = tuple(kind for kind in FAULTS if kind not in OPT_IN)
