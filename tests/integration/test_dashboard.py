"""The dashboard at `disco watch --listen`'s `/`, in a real Chromium (Selenium) against a real watcher,
Consul and HAProxy: it lists services and servers, follows a registration, a health flip and a weight
change without a reload, flags drift and gate holds in words, and says when the watcher is gone.
`--listen-auth-file` over plain HTTP.

With ``DISCO_SCREENSHOTS=DIR`` set, the browser test saves dashboard-*.png there (docs/img holds two).
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from discovery.haproxy.runtime import RuntimeAPI
from testkit import take_port, wait_until, webapp_command

from .conftest import Stack
from .test_observe import listen

#: The contract is "within a second"; the deadline leaves room for a loaded test machine.
LIVE_DEADLINE = 1.5
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("the dashboard test needs chromium and chromium-driver: run `make deps`", pytrace=False)
    from selenium import webdriver

    monkeypatch.setenv("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def webapps(stack: Stack, count: int) -> list[int]:
    """``count`` webapps on free ports (HAProxy's checks pass against them); their ports."""
    ports = [take_port() for _ in range(count)]
    for i, port in enumerate(ports, 1):
        stack.spawn(webapp_command(port, f"web-{i}"), f"webapp-{i}")
    return ports


def register(stack: Stack, sid: str, port: int, weight: int | None = None) -> None:
    """An instance with a TTL check that starts passing (fail it with :func:`check`)."""
    body = {
        "Name": stack.service,
        "ID": sid,
        "Address": "127.0.0.1",
        "Port": port,
        "Check": {"CheckID": f"service:{sid}", "TTL": "600s", "Status": "passing"},
    }
    if weight is not None:
        body["Meta"] = {"disco-weight": str(weight)}
    stack.consul.put("/v1/agent/service/register", body)


def text_of(driver: Any, css: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return str(driver.find_element(By.CSS_SELECTOR, css).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def row(driver: Any, server: str) -> str:
    return text_of(driver, f'section[data-service="web"] tr[data-server="{server}"]')


def cell(driver: Any, server: str, column: int) -> str:
    return text_of(driver, f'section[data-service="web"] tr[data-server="{server}"] td:nth-of-type({column})')


def seen_within(change: Callable[[], None], shown: Callable[[], bool], what: str) -> float:
    """Make ``change`` in Consul, then poll the page (no reload) until ``shown``; the seconds it took."""
    started = time.monotonic()
    change()
    try:
        wait_until(shown, LIVE_DEADLINE, interval=0.02, what=what)
    except AssertionError:
        wait_until(shown, 10, interval=0.02, what=what)
        raise AssertionError(f"{what}: took {time.monotonic() - started:.3f}s, more than {LIVE_DEADLINE}s") from None
    return time.monotonic() - started


def screenshot(driver: Any, name: str) -> None:
    folder = os.environ.get("DISCO_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(2000, max(800, int(height) + 20)))
        driver.save_screenshot(str(Path(folder) / f"dashboard-{name}.png"))
        driver.set_window_size(1400, 1000)


def test_the_page_follows_consul_and_haproxy_live_and_says_when_the_watcher_is_gone(stack: Stack, browser):
    driver: Any = browser
    base = listen(stack)
    ports = webapps(stack, 3)
    register(stack, "web-1", ports[0])
    register(stack, "web-2", ports[1])
    wait_until(lambda: stack.consul.passing("web") == ["web-1", "web-2"], 10, what="two instances in Consul")
    stack.start_balancer(live=True)
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=1).status_code == 200, 15, what="the watcher ready")

    driver.get(base + "/")
    wait_until(lambda: "web-2" in row(driver, "web-2"), 10, what="the page to list web-1 and web-2")
    assert "passing" in cell(driver, "web-1", 1) and "In step" in row(driver, "web-1")
    assert "Live" in text_of(driver, "#connection")
    assert text_of(driver, 'section[data-service="web"] caption').startswith("Servers of web")
    driver.execute_script("window.notReloaded = 42")
    screenshot(driver, "normal")

    took = {
        "registration": seen_within(
            lambda: register(stack, "web-3", ports[2]),
            lambda: "passing" in cell(driver, "web-3", 1) and f"127.0.0.1:{ports[2]}" in cell(driver, "web-3", 4),
            "web-3 on the page, in Consul and HAProxy",
        ),
        "health flip": seen_within(
            lambda: stack.consul.put("/v1/agent/check/fail/service:web-1"),
            lambda: cell(driver, "web-1", 1).startswith("critical"),
            "web-1 critical on the page",
        ),
        "weight change": seen_within(
            lambda: register(stack, "web-2", ports[1], weight=5),
            lambda: cell(driver, "web-2", 6) == "5",
            "web-2's weight 5 in HAProxy's column",
        ),
    }
    print("dashboard: change in Consul -> shown on the page:", {k: f"{v * 1000:.0f} ms" for k, v in took.items()})
    assert driver.execute_script("return window.notReloaded") == 42
    wait_until(lambda: "check 'service:web-1'" in cell(driver, "web-1", 2), 5, what="why web-1 is not routed")
    timeline = text_of(driver, "#timeline tbody")
    assert "applied live" in timeline and "Consul lists 3 instances" in timeline

    # Drift: HAProxy runs web-3 in maintenance while the file lists it (no event: the periodic refresh shows it).
    RuntimeAPI(stack.admin_socket).set_state("web", "web-3", "maint")
    wait_until(lambda: "DRIFT: in maintenance in HAProxy" in row(driver, "web-3"), 10, what="the drift flagged")
    screenshot(driver, "drift")
    # A gate hold: every instance of web gone at once is suspect; the gate keeps the servers HAProxy had.
    for sid in ("web-1", "web-2", "web-3"):
        stack.consul.put(f"/v1/agent/service/deregister/{sid}")
    wait_until(lambda: "Held:" in text_of(driver, 'section[data-service="web"]'), 10, what="the gate hold on the page")
    assert "held by the sanity gate" in text_of(driver, "#timeline tbody")
    screenshot(driver, "held")

    stack.consul.stop()  # Consul gone: the page says so instead of showing its last answer as current
    wait_until(lambda: "Consul does not answer" in text_of(driver, "#alerts"), 15, what="the page to say so")
    assert "unknown" in cell(driver, "web-3", 1)

    assert stack.watch is not None
    stack.watch.stop()
    wait_until(lambda: "The watcher does not answer" in text_of(driver, "#alerts"), 10, what="the page to say so")
    assert "Disconnected" in text_of(driver, "#connection")
    screenshot(driver, "lost")


def test_the_auth_file_protects_the_page_and_metrics_but_not_the_probes(stack: Stack, tmp_path: Path):
    token = "s3cret-token-for-the-test"
    secret = tmp_path / "listen-token"
    secret.write_text(token + "\n")
    base = listen(stack)
    stack.watch_args = (lambda orig: lambda *extra: orig("--listen-auth-file", str(secret), *extra))(stack.watch_args)
    register(stack, "web-1", 9001)
    wait_until(lambda: stack.consul.passing("web") == ["web-1"], 10, what="web-1 in Consul")
    stack.start_balancer(live=True)
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=1).status_code == 200, 15, what="the watcher ready")

    assert requests.get(f"{base}/healthz", timeout=2).status_code == 200
    bearer = {"Authorization": f"Bearer {token}"}
    for path in ("/", "/metrics", "/state.json", "/dashboard.js", "/events"):
        refused = requests.get(base + path, timeout=2)
        assert refused.status_code == 401, path
        assert refused.headers["WWW-Authenticate"].startswith("Basic")
        assert token not in refused.text
        assert requests.get(base + path, timeout=2, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert requests.get(f"{base}/", timeout=2, headers=bearer).status_code == 200
    assert "disco_applies_total" in requests.get(f"{base}/metrics", timeout=2, headers=bearer).text
    state = wait_until(lambda: requests.get(f"{base}/state.json", timeout=6, auth=("anyone", token)).json(), 10)
    assert [s["name"] for s in state["services"]] == ["web"]
    assert [s["name"] for s in state["services"][0]["servers"]] == ["web-1"]
    basic = base64.b64encode(f"admin:{token}".encode()).decode()
    with requests.get(f"{base}/events", timeout=6, stream=True, headers={"Authorization": f"Basic {basic}"}) as sse:
        assert sse.status_code == 200 and sse.headers["Content-Type"] == "text/event-stream"
        first, deadline = b"", time.monotonic() + 10
        for chunk in sse.iter_content(chunk_size=64):
            first += chunk
            if b'"name":"web-1"' in first or time.monotonic() > deadline:
                break
        assert b"event: state" in first and b'"name":"web-1"' in first


def test_more_dashboards_than_allowed_are_refused_and_the_probes_still_answer(stack: Stack):
    from discovery.observe import MAX_DASHBOARDS

    base = listen(stack)
    register(stack, "web-1", 9001)
    stack.start_balancer(live=True)
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=1).status_code == 200, 15, what="the watcher ready")
    session = requests.Session()
    streams = []
    try:
        for _ in range(MAX_DASHBOARDS):
            streams.append(session.get(f"{base}/events", timeout=5, stream=True))
        assert all(s.status_code == 200 for s in streams)
        extra = requests.get(f"{base}/events", timeout=5, stream=True)
        assert extra.status_code == 503 and "too many dashboards" in extra.text
        for _ in range(5):
            started = time.monotonic()
            assert requests.get(f"{base}/healthz", timeout=2).status_code == 200
            assert time.monotonic() - started < 1.0
    finally:
        for s in streams:
            s.close()


def test_prometheus_scrapes_with_the_auth_file_as_its_authorization_credentials_file(stack: Stack, tmp_path: Path):
    """The scrape config docs/dashboard.md gives: Prometheus' `authorization` with `credentials_file`."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("this test needs Prometheus: run `make deps` (apt-get install prometheus)", pytrace=False)
    secret = tmp_path / "listen-token"
    secret.write_text("prom-scrape-token\n")
    base = listen(stack)
    stack.watch_args = (lambda orig: lambda *extra: orig("--listen-auth-file", str(secret), *extra))(stack.watch_args)
    register(stack, "web-1", 9001)
    stack.start_balancer(live=True)
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=1).status_code == 200, 15, what="the watcher ready")
    prom_port = take_port()
    target = base.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    jobs = ""
    for job, auth in (
        ("with", f"    authorization:\n      type: Bearer\n      credentials_file: {secret}\n"),
        ("without", ""),
    ):
        jobs += f"  - job_name: {job}\n{auth}    static_configs:\n      - targets: ['{target}']\n"
    config.write_text(f"global:\n  scrape_interval: 1s\nscrape_configs:\n{jobs}")
    stack.spawn(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        "prometheus",
    )

    def up() -> dict[str, str]:
        answer = requests.get(f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": "up"}, timeout=2)
        return {r["metric"]["job"]: r["value"][1] for r in answer.json()["data"]["result"]}

    assert wait_until(lambda: (u := up()).keys() == {"with", "without"} and u, 30, what="both jobs scraped") == {
        "with": "1",
        "without": "0",
    }


def test_an_operator_override_in_force_is_shown_with_its_key_and_note_and_is_not_drift(stack: Stack):
    base = listen(stack)
    register(stack, "web-1", 9001)
    register(stack, "web-2", 9002)
    wait_until(lambda: stack.consul.passing("web") == ["web-1", "web-2"], 10, what="two instances in Consul")
    stack.start_balancer(live=True)
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=1).status_code == 200, 15, what="the watcher ready")
    requests.put(
        f"{stack.consul.url}/v1/kv/disco/overrides/web", json={"drain": ["web-2"], "note": "INC-42"}, timeout=2
    ).raise_for_status()

    def web() -> dict[str, Any] | None:
        state = requests.get(f"{base}/state.json", timeout=6).json()
        svc = next(s for s in state["services"] if s["name"] == "web")
        row = next(r for r in svc["servers"] if r["name"] == "web-2")
        return svc if row["haproxy"] and row["haproxy"]["state"] == "drain" else None

    svc = wait_until(web, 15, what="web-2 drained by the override")
    assert svc["overrides"] == ["drain web-2 (INC-42)"] and svc["override_key"] == "disco/overrides/web"
    row = next(r for r in svc["servers"] if r["name"] == "web-2")
    assert row["override"] == "drain" and row["drift"] is None
    assert any("drained by operator override disco/overrides/web (INC-42)" in why for why in row["consul"]["why"])
    state = requests.get(f"{base}/state.json", timeout=6).json()
    assert state["overrides"]["in_force"][0]["key"] == "disco/overrides/web"
    assert "operator overrides in force: drain 1" in [e["text"] for e in state["timeline"]]


def test_a_browser_that_logged_in_gets_the_live_page(stack: Stack, browser: Any, tmp_path: Path):
    """Basic credentials a browser has for the page also go with its event stream (same origin)."""
    token = "browser-token-7"
    secret = tmp_path / "listen-token"
    secret.write_text(token + "\n")
    base = listen(stack)
    stack.watch_args = (lambda orig: lambda *extra: orig("--listen-auth-file", str(secret), *extra))(stack.watch_args)
    register(stack, "web-1", 9001)
    stack.start_balancer(live=True)
    wait_until(lambda: requests.get(f"{base}/readyz", timeout=1).status_code == 200, 15, what="the watcher ready")
    browser.get(base.replace("http://", f"http://anyone:{token}@") + "/")
    wait_until(lambda: "web-1" in row(browser, "web-1"), 10, what="the page to list web-1 through the stream")
    assert "Live" in text_of(browser, "#connection")
