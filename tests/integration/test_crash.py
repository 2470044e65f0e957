"""The watcher killed with SIGKILL while it applies, on the reload path and the live path
(``--runtime-socket``), against a real HAProxy and a stream of changes in Consul.

Each kill is timed from the watcher's own progress: once its log says it rendered a config
and has not yet said how the apply ended, a random few milliseconds later it is killed, so
kills land inside validation, the rename, the reload or the runtime API calls.  After each
kill, what a user would check:

- the output file is a complete config HAProxy accepts (``haproxy -c``);
- the next watcher removes the temporary files the killed one left;
- the next watcher brings the file and the running HAProxy to Consul's state.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from discovery.haproxy.runtime import RuntimeAPI
from testkit import DISCO, ConsulAgent, Proc, take_port, take_ports, wait_until

ROUNDS = 10  # kills per path
INSTANCES = 12  # IDs the churn registers and deregisters in turn
# A kill lands this long at most after the watcher logs "rendered", in turn for each window: an
# apply by reload takes a validation (a candidate file exists: ten or twenty ms) then a confirmed
# reload (tens to hundreds), so every other kill aims at the validation; a live apply takes a few
# ms, so about half the kills land inside it (seeing the log line takes a millisecond or two).
KILL_WITHIN = {False: (0.02, 0.3), True: (0.003,)}
#: Kills that must land inside an apply for the run to count (the test is not vacuous).
INSIDE_AT_LEAST = {False: ROUNDS // 2, True: 2}

RENDERED = re.compile(r"\brendered\b")
FINISHED = re.compile(r"\bapplied \S.*: |the live config is unchanged")


@dataclass
class Churn:
    """Registers and deregisters instances in Consul without pause, until paused or stopped."""

    consul: ConsulAgent
    ports: list[int]
    rng: random.Random
    go: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changes: int = 0

    def run(self) -> None:  # bounded: until stopped, and at most 10 minutes
        end = time.monotonic() + 600
        while not self.done.is_set() and time.monotonic() < end:
            with self.lock:
                if self.go.is_set():
                    self.step()
            if not self.go.is_set():
                self.go.wait(0.05)
            self.done.wait(0.003)

    def step(self) -> None:
        n = self.rng.randrange(INSTANCES)
        if self.rng.random() < 0.6:
            self.consul.put(
                "/v1/agent/service/register",
                {"Name": "web", "ID": f"w{n}", "Address": "127.0.0.1", "Port": self.ports[n]},
            )
        else:
            self.consul.put(f"/v1/agent/service/deregister/w{n}")
        self.changes += 1

    def pause(self) -> set[str]:
        """Stop changing Consul; return the instances it now lists."""
        self.go.clear()
        with self.lock:  # a change in flight is finished; none starts after this
            pass

        def synced() -> tuple[set[str]] | None:  # a tuple: truthy even when no instance is left
            local = {sid for sid, s in self.consul.agent_services().items() if s.get("Service") == "web"}
            listed = set(self.consul.passing("web"))
            return (listed,) if listed == local else None

        # The agent copies its registrations to the catalog on its own, a moment after each PUT.
        return wait_until(synced, 10, what="the agent's registrations in the catalog")[0]


@dataclass
class Balancer:
    """HAProxy in master-worker mode with its admin socket, and how to start watchers for it."""

    workdir: Path
    consul: ConsulAgent
    live: bool
    procs: list[Proc] = field(default_factory=list)

    @property
    def output(self) -> Path:
        return self.workdir / "haproxy.cfg"

    @property
    def admin(self) -> Path:
        return self.workdir / "admin.sock"

    def start(self) -> None:
        """First config by `disco watch --once`, then HAProxy; self.argv starts watchers for it."""
        self.common = [
            *DISCO,
            "watch",
            "--service",
            "web",
            "--output",
            str(self.output),
            "--wait",
            "0ms:10ms",
            "--consul-addr",
            self.consul.url,
            "--set",
            f"frontend_port={take_port()}",
            "--set",
            f"stats_port={take_port()}",
            "--set",
            "bind_address=127.0.0.1",
        ]
        mode = (
            ["--runtime-socket", str(self.admin), "--drain-grace", "0s"]
            if self.live
            else ["--set", f"admin_socket={self.admin}"]
        )  # the admin socket only to read the servers back
        once = subprocess.run([*self.common, *mode, "--once"], capture_output=True, text=True, timeout=60)
        assert once.returncode == 0, once.stderr
        self.argv = [*self.common, *mode, "--master-socket", str(self.workdir / "master.sock")]
        self.procs.append(
            Proc(
                ["haproxy", "-W", "-S", str(self.workdir / "master.sock"), "-f", str(self.output)],
                self.workdir / "haproxy.log",
            )
        )
        wait_until(self.admin.exists, 10, what="HAProxy's admin socket")

    def write_only(self) -> None:
        """Render and swap in the config a watcher would, without telling HAProxy (admin_socket
        set as --runtime-socket sets it, so the text is the same)."""
        result = subprocess.run(
            [*self.common, "--set", f"admin_socket={self.admin}", "--once"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr

    def watcher(self, n: int) -> Proc:
        proc = Proc(self.argv, self.workdir / f"watch-{n}.log")
        self.procs.append(proc)
        return proc

    def serving(self) -> set[str]:
        """The servers the running HAProxy sends traffic to (not draining, not in maintenance)."""
        return {
            name for name, s in RuntimeAPI(self.admin).servers("web").items() if not s.in_maintenance and not s.draining
        }

    def in_file(self) -> set[str]:
        return {line.split()[1] for line in self.output.read_text().splitlines() if line.strip().startswith("server ")}

    @property
    def last_good(self) -> Path:
        return self.output.with_name(self.output.name + ".last-good")

    def temp_files(self) -> set[Path]:
        return set(self.workdir.glob(f".{self.output.name}.*.tmp"))

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def progress(log: str) -> tuple[int, int]:
    """(passes rendered, passes finished) so far, from a watcher's log."""
    return len(RENDERED.findall(log)), len(FINISHED.findall(log))


def converged(balancer: Balancer, expected: set[str]) -> None:
    # Found by this test, and fixed: a watcher killed after the file is swapped in but before HAProxy is
    # told left the next watcher trusting the file ("unchanged") while HAProxy ran the older servers.
    wait_until(lambda: balancer.serving() == expected, 20, what=f"HAProxy to serve {sorted(expected)}")


def applying(watch: Proc, rendered_before: int) -> bool:
    """Has the watcher rendered a new config and not yet said how applying it ended?"""
    rendered, finished = progress(watch.output())
    return rendered > max(rendered_before, finished)


def check_config(path: Path) -> None:
    text = path.read_text()
    assert text.rstrip().endswith("rise 1") or "server " not in text, "the config on disk is cut short"
    result = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("live", [False, True], ids=["reload", "live"])
def test_sigkill_at_random_moments_never_leaves_a_partial_or_invalid_config(consul, tmp_path, live):
    rng = random.Random(20240611 + live)
    ports = take_ports(INSTANCES + 2)  # nothing listens on them: HAProxy only marks the servers down
    for n in (0, 1):  # two that stay, so no change empties the service (the sanity gate would hold it)
        consul.put(
            "/v1/agent/service/register",
            {"Name": "web", "ID": f"base-{n}", "Address": "127.0.0.1", "Port": ports[INSTANCES + n]},
        )
    churn = Churn(consul, ports[:INSTANCES], rng)
    thread = threading.Thread(target=churn.run, daemon=True)
    thread.start()
    balancer = Balancer(tmp_path, consul, live)
    balancer.start()
    mid_apply = left_temp = 0
    leftovers: set[Path] = set()
    try:
        for n in range(ROUNDS + 1):
            expected = churn.pause()
            watch = balancer.watcher(n)
            try:
                # The new watcher cleaned up after the killed one, and converges to Consul's state.
                wait_until(lambda w=watch: "watching" in w.output(), 30, what="the watcher started")
                assert not leftovers & balancer.temp_files(), "temporary files of the killed watcher left"
                wait_until(lambda e=expected: balancer.in_file() == e, 20, what=f"the file to list {sorted(expected)}")
                converged(balancer, expected)
                check_config(balancer.output)
                if n == ROUNDS:
                    break
                # Changes again; kill it a few milliseconds after it starts to apply one.
                churn.go.set()
                rendered = progress(watch.output())[0]
                wait_until(lambda w=watch, r=rendered: applying(w, r), 30, interval=0.001, what="an apply in progress")
                windows = KILL_WITHIN[live]
                time.sleep(rng.uniform(0, windows[n % len(windows)]))  # the kill's moment inside the apply, not a wait
                watch.signal(signal.SIGKILL)
            finally:
                watch.stop()
            done, finished = progress(watch.output())
            mid_apply += done > finished
            leftovers = balancer.temp_files()
            left_temp += bool(leftovers)
            check_config(balancer.output)  # whatever the kill interrupted
    finally:
        churn.done.set()
        churn.go.set()
        thread.join(10)
        balancer.close()
    print(
        f"{'live' if live else 'reload'}: {ROUNDS} kills, {mid_apply} inside an apply, {left_temp} left a "
        f"temporary file; {churn.changes} changes in Consul"
    )
    assert mid_apply >= INSIDE_AT_LEAST[live], "the kills did not land inside applies"
    if not live:
        assert left_temp >= 1, "no kill landed while a candidate was being written or validated"


@pytest.mark.parametrize("live", [False, True], ids=["reload", "live"])
def test_a_file_swapped_in_but_not_applied_is_applied_by_the_next_watcher(consul, tmp_path, live):
    """The state a kill between the swap and the reload (or the runtime API calls) leaves, made
    on purpose: the new file in place, HAProxy and OUTPUT.last-good still on the old one."""
    ports = take_ports(3)
    for n in (0, 1):
        consul.put(
            "/v1/agent/service/register", {"Name": "web", "ID": f"base-{n}", "Address": "127.0.0.1", "Port": ports[n]}
        )
    balancer = Balancer(tmp_path, consul, live)
    balancer.start()
    try:
        first = balancer.watcher(0)
        wait_until(lambda: ": unchanged" in first.output(), 30, what="the first watcher settled")
        first.stop()
        assert balancer.serving() == {"base-0", "base-1"}
        consul.put("/v1/agent/service/register", {"Name": "web", "ID": "w0", "Address": "127.0.0.1", "Port": ports[2]})
        last_good = balancer.last_good.read_text()
        balancer.write_only()  # the file swapped in, HAProxy not told; last-good as the killed watcher left it
        balancer.last_good.write_text(last_good)
        assert balancer.in_file() == {"base-0", "base-1", "w0"} and balancer.serving() == {"base-0", "base-1"}
        second = balancer.watcher(1)
        wait_until(lambda: "applied" in second.output(), 30, what="the next watcher's first pass")
        wait_until(lambda: balancer.serving() == {"base-0", "base-1", "w0"}, 10, what="HAProxy to serve w0")
    finally:
        balancer.close()
