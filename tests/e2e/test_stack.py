"""End to end on a real Docker engine: compose up, scale, kill, Consul restart, and what a person sees.

The tests run in file order on one stack (a session fixture), as an operator would work.
"""

from __future__ import annotations

import collections
import threading
import time

import requests

from testkit import wait_until

from .conftest import ARTIFACTS, Stack


def reached(stack: Stack, n: int = 30) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(n):
        r = requests.get(stack.lb, timeout=3, headers={"Connection": "close"})
        seen[r.headers.get("X-Instance", f"status {r.status_code}")] += 1
    return seen


class SteadyClient:
    """Requests through the load balancer every 10 ms until stopped (at most ``limit`` seconds)."""

    def __init__(self, url: str, limit: float = 300) -> None:
        self.url, self.limit = url, limit
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        end = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < end:
            try:
                r = requests.get(self.url, timeout=5, headers={"Connection": "close"})
                if r.status_code == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"status {r.status_code}")
            except requests.RequestException as exc:
                self.failures.append(type(exc).__name__)
            self._stop.wait(0.01)

    def __enter__(self) -> SteadyClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_three_webapps_up_and_all_reached(stack: Stack):
    assert len(stack.up_servers()) == 3
    seen = reached(stack, 30)
    assert len(seen) == 3 and all(
        name.startswith(tuple(c.id[:12] for c in stack.containers("webapp"))) for name in seen
    )


def test_logs_of_every_process_reach_docker_logs(stack: Stack):
    haproxy = stack.containers("haproxy")[0].logs().decode(errors="replace")
    webapp = stack.containers("webapp")[0].logs().decode(errors="replace")
    assert "[watch]" in haproxy and "[haproxy]" in haproxy and "[consul]" in haproxy
    assert "[register]" in webapp and "[webapp]" in webapp and "[consul]" in webapp
    # HAProxy started once, on the config disco rendered, and stayed under supervisord.
    assert "exited: haproxy" not in haproxy
    assert "bootstrap config written" in haproxy


def processes(container) -> list[tuple[str, str]]:
    """(uid, command line) of every process in a container, as the engine sees them."""
    top = container.top(ps_args="-eo pid,uid,args")  # the engine needs the PID column
    return [(row[1], row[2]) for row in top["Processes"]]


def test_processes_run_as_non_root_wherever_they_can(stack: Stack):
    for uid, args in processes(stack.containers("webapp")[0]):
        assert uid != "0", args  # supervisord, the agent, the webapp and disco register
    haproxy = processes(stack.containers("haproxy")[0])
    root = [args for uid, args in haproxy if uid == "0"]
    # Only supervisord, the entrypoint shell it replaced, HAProxy's master (port 80) and the log
    # prefixer supervisord starts for it keep root; the workers, the agent and disco watch do not.
    assert all(
        "supervisord" in a or a.startswith(("python3 -m discovery.logprefix haproxy", "haproxy -W")) for a in root
    ), root
    workers = [uid for uid, args in haproxy if args.startswith("haproxy -W")]
    assert len(workers) >= 2 and workers.count("0") == 1  # the master; its worker(s) dropped root
    assert any(uid != "0" and "disco watch" in args for uid, args in haproxy)
    assert any(uid != "0" and args.startswith("consul agent") for uid, args in haproxy)


def test_crashed_webapp_is_restarted_by_supervisord(stack: Stack):
    container = stack.containers("webapp")[0]
    kill = (
        "for p in /proc/[0-9]*; do case \"$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)\" in "
        "'python3 /app/app.py'*) kill -9 ${p#/proc/};; esac; done"
    )
    assert container.exec_run(["sh", "-c", kill]).exit_code == 0

    def restarted() -> bool:
        logs = container.logs().decode(errors="replace")
        return "exited: webapp" in logs and "spawned: 'webapp'" in logs.split("exited: webapp", 1)[1]

    wait_until(restarted, 30, interval=0.2, what="supervisord to restart the webapp")
    wait_until(
        lambda: len(stack.up_servers()) == 3 and len(reached(stack, 12)) == 3,
        60,
        interval=0.2,
        what="the restarted webapp serving again",
    )


def test_scale_up_to_six(stack: Stack):
    t = time.monotonic()
    stack.compose("up", "-d", "--no-build", "--scale", "webapp=6")
    wait_until(lambda: len(stack.up_servers()) == 6, 120, interval=0.2, what="6 servers UP")
    stack.timings["scale 3 -> 6 (6 UP)"] = time.monotonic() - t
    assert len(reached(stack, 36)) == 6


def test_scale_down_to_two_with_no_failed_request(stack: Stack):
    with SteadyClient(stack.lb) as client:
        t = time.monotonic()
        stack.compose("up", "-d", "--no-build", "--scale", "webapp=2")
        wait_until(
            lambda: len(stack.up_servers()) == 2 and len(stack.passing()) == 2, 120, interval=0.2, what="2 webapps left"
        )
        stack.timings["scale 6 -> 2 (2 left)"] = time.monotonic() - t
        time.sleep(1)
    assert client.failures == [] and client.ok > 50
    stack.timings["scale-down: requests answered (0 failed)"] = client.ok
    assert len(reached(stack, 20)) == 2


def test_killed_webapp_leaves_once_consul_detects_it(stack: Stack):
    stack.compose("up", "-d", "--no-build", "--scale", "webapp=3")
    wait_until(
        lambda: len(stack.up_servers()) == 3 and len(stack.passing()) == 3, 120, interval=0.2, what="3 webapps again"
    )
    victim = stack.containers("webapp")[0]
    victim_id = next(i for i in stack.passing() if victim.id[:12] in i)
    t = time.monotonic()
    victim.kill()  # SIGKILL: nothing deregisters
    wait_until(lambda: victim_id not in stack.passing(), 60, interval=0.05, what="Consul to drop the killed one")
    stack.timings["kill -> out of Consul's passing list"] = time.monotonic() - t
    wait_until(lambda: victim_id not in stack.up_servers(), 30, interval=0.05, what="HAProxy to drop it")
    stack.timings["kill -> not UP in HAProxy"] = time.monotonic() - t
    assert all(victim.id[:12] not in name for name in reached(stack, 20))


def test_consul_server_restart_keeps_traffic_and_changes_flow_again(stack: Stack):
    with SteadyClient(stack.lb) as client:
        consul = stack.containers("consul")[0]
        t = time.monotonic()
        consul.restart(timeout=10)
        wait_until(
            lambda: requests.get(f"{stack.consul}/v1/status/leader", timeout=2).json(),
            120,
            interval=0.5,
            what="a Consul leader again",
        )
        stack.timings["consul restart -> leader"] = time.monotonic() - t
        time.sleep(2)
    assert client.failures == [] and client.ok > 50
    stack.compose("up", "-d", "--no-build", "--scale", "webapp=4")
    wait_until(lambda: len(stack.up_servers()) == 4, 120, interval=0.2, what="a new webapp routed after restart")


def page_text(driver, url: str, screenshot: str, expect: list[str], timeout: float = 60) -> str:
    """Open ``url`` in headless Chromium, wait (bounded) until every ``expect`` string shows, screenshot it."""
    driver.get(url)
    end = time.monotonic() + timeout
    text = ""
    while time.monotonic() < end:
        text = driver.find_element("tag name", "body").text
        if all(e in text for e in expect):
            break
        time.sleep(0.2)
    driver.save_screenshot(str(ARTIFACTS / screenshot))
    return text


def test_stats_page_and_consul_ui_show_the_members(stack: Stack):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.binary_location = "/usr/bin/chromium"
    members = stack.passing()
    nodes = [c.id[:12] for c in stack.containers("webapp")]
    assert members and nodes
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        stats = page_text(driver, stack.stats, "stats.png", members)
        services = page_text(driver, f"{stack.consul}/ui/dc1/services/web/instances", "consul-services.png", members)
        node_page = page_text(driver, f"{stack.consul}/ui/dc1/nodes", "consul-nodes.png", nodes)
    finally:
        driver.quit()
    assert all(m in stats for m in members)
    assert all(m in services for m in members)
    assert all(n in node_page for n in nodes)
    assert (ARTIFACTS / "stats.png").stat().st_size > 10_000
