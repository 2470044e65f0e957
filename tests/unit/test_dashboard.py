"""The dashboard's pure parts: the auth file's credential, the board's timeline and its snapshot thread, the page."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from discovery.consul.watch import ConsulRequest
from discovery.errors import ConfigError, ValidationError
from discovery.observe.auth import Credential
from discovery.observe.board import Board
from discovery.observe.dashboard import asset, page_weight
from discovery.pipeline.events import Applied, ChangeSeen, Failed, Held, Released
from discovery.pipeline.timeline import Timed


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_token_is_taken_as_bearer_or_as_any_users_password(tmp_path: Path):
    path = tmp_path / "token"
    path.write_text("  t0ken-42\n\n")
    cred = Credential.load(path)
    assert cred.allows("Bearer t0ken-42") and cred.allows("bearer  t0ken-42 ")
    assert cred.allows(basic("anyone", "t0ken-42"))
    for header in (
        None,
        "",
        "Bearer t0ken-4",
        "Bearer t0ken-420",
        basic("t0ken-42", "x"),
        "Basic !!",
        "Token t0ken-42",
    ):
        assert not cred.allows(header), header
    assert "t0ken" not in repr(cred)


def test_user_and_password_need_both(tmp_path: Path):
    path = tmp_path / "pair"
    path.write_text("ops:pa:ss\n")
    cred = Credential.load(path)
    assert cred.allows(basic("ops", "pa:ss")) and cred.allows("Bearer ops:pa:ss")
    assert not cred.allows(basic("other", "pa:ss")) and not cred.allows(basic("ops", "pa"))


@pytest.mark.parametrize(
    ("text", "error"), [("", "found 0"), ("a\nb\n", "found 2"), ("two words\n", "spaces"), (None, "cannot read")]
)
def test_an_unusable_auth_file_is_a_config_error_naming_it(tmp_path: Path, text: str | None, error: str):
    path = tmp_path / "auth"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=f"--listen-auth-file {path}: .*{error}"):
        Credential.load(path)


def test_the_timeline_says_what_happened_in_words():
    wall = iter(range(1000, 2000))
    board = Board(lambda services, held: {"services": []}, ("web",), {}, wall=lambda: float(next(wall)))
    board(ChangeSeen("web", 3))
    board(Applied("1 backends, 3 servers", "applied live", 0.0021, True, (("web", 3),)))
    board(Timed(0.0, (("convert", 0.001), ("runtime", 0.004))))
    board(Held("web", 3, 0, "every instance is gone", 30))
    board(Released("web", 3, 0.0, True))
    board(Failed("apply", ValidationError("haproxy -c refused it"), "the live config is unchanged"))
    board(ConsulRequest("/v1/health/service", "changed"))
    board(ConsulRequest("/v1/health/service", "error"))
    events = list(board._events)
    assert [e["kind"] for e in events] == ["change", "apply", "hold", "release", "failure", "consul"]
    assert events[1]["text"] == "applied live: 1 backends, 3 servers in 2.1 ms (change → applied 5.0 ms)"
    assert events[1]["latency_ms"] == 5.0
    assert "held by the sanity gate: every instance is gone (3 → 0 instances" in events[2]["text"]
    assert events[5]["text"] == "Consul does not answer"


def test_one_snapshot_per_change_whatever_the_number_of_dashboards_and_none_without_one():
    calls: list[list[str]] = []

    def snapshot(services: list[str], held: dict[str, str]) -> dict[str, Any]:
        calls.append(services)
        return {"services": [{"name": s} for s in services], "held": held}

    board = Board(snapshot, ("web",), {"version": "0"}, refresh=60, min_gap=0.0)
    stop = threading.Event()
    thread = threading.Thread(target=board.run, args=(stop,), daemon=True)
    thread.start()
    try:
        board(ChangeSeen("api", 1))
        assert board.next(0, 0.5) is None and calls == []  # nobody looks: nothing is built
        for _ in range(3):
            board.opened()
        got = board.next(0, 5)
        assert got is not None
        version, payload = got
        assert [s["name"] for s in json.loads(payload)["services"]] == ["web", "api"]
        built = len(calls)
        board(Applied("2 backends", "reloaded", 0.01, True, (("web", 1),)))  # api left
        version, payload = board.next(version, 5) or (0, b"")
        data = json.loads(payload)
        assert [s["name"] for s in data["services"]] == ["web"] and data["timeline"][-1]["kind"] == "apply"
        assert len(calls) == built + 1  # three dashboards, one build
    finally:
        stop.set()
        thread.join(2)
    assert not thread.is_alive()


def test_the_page_is_small_self_contained_and_puts_no_markup_from_data():
    assert page_weight() < 24_000
    html, js = asset("index.html").decode(), asset("dashboard.js").decode()
    assert "http://" not in html + js and "https://" not in html + js  # nothing from elsewhere
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "document.write" not in js
    assert 'aria-live="polite"' in html and 'role="alert"' in html and "<caption>" in html


def test_a_change_seen_while_no_dashboard_is_open_does_not_spin_the_thread():
    turns = []

    def clock() -> float:
        turns.append(1)
        return time.monotonic()

    board = Board(lambda services, held: {"services": []}, ("web",), {}, clock=clock)
    board(ChangeSeen("web", 1))  # due to be shown soon, but nobody looks
    stop = threading.Event()
    thread = threading.Thread(target=board.run, args=(stop,), daemon=True)
    thread.start()
    time.sleep(1.0)
    stop.set()
    thread.join(2)
    assert len(turns) < 20, f"{len(turns)} turns in a second"


def test_a_rebuild_that_finds_nothing_new_is_not_pushed_but_answers_a_one_off_request():
    board = Board(lambda services, held: {"services": [{"name": s} for s in services]}, ("web",), {}, min_gap=0.0)
    stop = threading.Event()
    thread = threading.Thread(target=board.run, args=(stop,), daemon=True)
    thread.start()
    try:
        first = board.current()
        assert first is not None and json.loads(first)["services"] == [{"name": "web"}]
        board.opened()
        version = (board.next(0, 5) or (0, b""))[0]
        board.opened()  # another page: a rebuild, with nothing new but its time
        assert board.next(version, 1.0) is None
        assert board.current() is not None  # state.json still answers at once
    finally:
        stop.set()
        thread.join(2)
