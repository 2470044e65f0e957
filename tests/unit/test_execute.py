"""Validate, swap and reload against the real filesystem and the real `haproxy -c`; the reloader is scripted."""

from __future__ import annotations

import shutil
import threading
from typing import ClassVar

import pytest

from discovery.errors import HAProxyUnavailable, LiveUpdateFailed, ReloadError, ValidationError
from discovery.haproxy.files import LiveConfig
from discovery.haproxy.validate import Validator
from discovery.pipeline.decide import Action
from discovery.pipeline.execute import Executor, Outcome, ReloadRetry
from discovery.pipeline.live import LiveUpdater

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")

GOOD = (
    "defaults\n  mode http\n  timeout connect 1s\n  timeout client 1s\n  timeout server 1s\n"
    "frontend f\n  bind 127.0.0.1:1\n  default_backend b\nbackend b\n"
)
GOOD2 = GOOD + "  balance roundrobin\n"
BAD = GOOD + "  no_such_keyword\n"


class Reloader:
    def __init__(self, *results):
        self.results = list(results)
        self.calls = 0

    def reload(self):
        self.calls += 1
        result = self.results.pop(0) if self.results else "ok"
        if isinstance(result, Exception):
            raise result
        return result


class Apply:
    """Decide, execute, then the idle-time housekeeping, as the watcher's loop does."""

    def __init__(self, executor):
        self.executor = executor

    def apply(self, text):
        outcome = self.executor.execute(self.executor.decide(text), text)
        self.executor.tick()
        return outcome


def applier(tmp_path, reloader=None, attempts=3):
    live = LiveConfig(tmp_path / "haproxy.cfg")
    executor = Executor(
        live,
        Validator(),
        reloader,
        threading.Event(),
        ReloadRetry(attempts=attempts, backoff_min=0.001, backoff_max=0.002),
    )
    executor.prepare()
    return live, Apply(executor)


def test_first_write_without_haproxy(tmp_path):
    live, app = applier(tmp_path)
    assert app.apply(GOOD) is Outcome.WRITTEN
    assert live.read() == GOOD and live.last_good.read_text() == GOOD


def test_unchanged_text_is_not_written_or_reloaded(tmp_path):
    reloader = Reloader()
    live, app = applier(tmp_path, reloader)
    app.apply(GOOD)
    mtime = live.path.stat().st_mtime_ns
    assert app.apply(GOOD) is Outcome.UNCHANGED
    assert live.path.stat().st_mtime_ns == mtime and reloader.calls == 1


def test_invalid_config_never_replaces_the_live_one(tmp_path):
    live, app = applier(tmp_path, Reloader())
    app.apply(GOOD)
    with pytest.raises(ValidationError, match="haproxy.cfg:10"):
        app.apply(BAD)
    assert live.read() == GOOD
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_reload_retried_then_succeeds(tmp_path):
    reloader = Reloader("ok", ReloadError("refused"), "ok")
    live, app = applier(tmp_path, reloader)
    app.apply(GOOD)
    assert app.apply(GOOD2) is Outcome.RELOADED
    assert reloader.calls == 3 and live.last_good.read_text() == GOOD2


def test_reload_refused_every_time_restores_last_good(tmp_path):
    live, app = applier(tmp_path, Reloader("ok", *[ReloadError("refused")] * 3))
    app.apply(GOOD)
    assert app.apply(GOOD2) is Outcome.ROLLED_BACK
    assert live.read() == GOOD


def test_no_haproxy_yet_means_written_not_retried(tmp_path):
    reloader = Reloader(HAProxyUnavailable("no socket"))
    live, app = applier(tmp_path, reloader)
    assert app.apply(GOOD) is Outcome.WRITTEN
    assert reloader.calls == 1 and live.read() == GOOD


def test_a_file_written_while_no_haproxy_answers_is_reloaded_once_one_does(tmp_path):
    """A HAProxy restarted as the file is written may have read the older file: the watcher does
    not count the config as running (nor as last good) until a HAProxy answers and takes it."""
    reloader = Reloader("ok", HAProxyUnavailable("no socket"), HAProxyUnavailable("no socket"), "ok")
    live, app = applier(tmp_path, reloader)
    app.apply(GOOD)
    assert app.apply(GOOD2) is Outcome.WRITTEN
    assert live.read() == GOOD2 and live.last_good.read_text() == GOOD
    assert not app.executor.in_sync and app.executor.awaiting_haproxy
    decision = app.executor.decide(GOOD2)
    assert decision.action is Action.RELOAD
    assert app.apply(GOOD2) is Outcome.WRITTEN  # still none answers: asked again, nothing rewritten
    assert app.apply(GOOD2) is Outcome.RELOADED
    assert app.executor.in_sync and not app.executor.awaiting_haproxy and reloader.calls == 4
    assert live.last_good.read_text() == GOOD2
    assert app.apply(GOOD2) is Outcome.UNCHANGED


def test_existing_file_is_adopted_as_last_good(tmp_path):
    (tmp_path / "haproxy.cfg").write_text(GOOD)
    live = LiveConfig(tmp_path / "haproxy.cfg")
    live.prepare()
    assert live.last_good.read_text() == GOOD


def test_building_touches_nothing_prepare_cleans_up(tmp_path):
    """A dry run or `plan` builds a LiveConfig beside a running watcher: it must not delete its candidate."""
    (tmp_path / "haproxy.cfg").write_text(GOOD)
    stale = tmp_path / ".haproxy.cfg.abc123.tmp"
    stale.write_text("half")
    before = sorted(p.name for p in tmp_path.iterdir())
    LiveConfig(tmp_path / "haproxy.cfg")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    LiveConfig(tmp_path / "haproxy.cfg").prepare()
    assert not stale.exists() and (tmp_path / "haproxy.cfg.last-good").read_text() == GOOD


def test_out_of_step_means_reload_even_for_the_same_text(tmp_path):
    """After a failed or partial update the next decision is a reload, never 'unchanged'."""
    _live, app = applier(tmp_path, Reloader())
    app.apply(GOOD)
    app.executor.in_sync = False
    assert app.executor.decide(GOOD).action is Action.RELOAD
    assert app.apply(GOOD) is Outcome.RELOADED and app.executor.in_sync


def test_file_mode_is_kept(tmp_path):
    live, app = applier(tmp_path)
    app.apply(GOOD)
    live.path.chmod(0o640)
    app.apply(GOOD2)
    assert live.path.stat().st_mode & 0o777 == 0o640


LIVE_BASE = GOOD + "  server a 127.0.0.1:8001 check\n"


class Updater:
    """The runtime API side, scripted: this test is about what is validated before anything goes live."""

    draining: ClassVar[dict] = {}

    def __init__(self):
        self.ran = []

    def execute(self, ops, parsed, mark=lambda _stage: None):
        self.ran.append(ops)
        return len(ops)

    def verify(self, parsed, backends):
        pass

    def forget(self):
        pass


def live_executor(tmp_path):
    live = LiveConfig(tmp_path / "haproxy.cfg")
    live.path.write_text(LIVE_BASE)
    updater = Updater()
    executor = Executor(live, Validator(), Reloader(), threading.Event(), ReloadRetry(attempts=1), updater)
    executor.prepare()
    return live, executor, updater


def test_a_live_change_is_validated_before_it_goes_live(tmp_path):
    live, executor, updater = live_executor(tmp_path)
    bad = LIVE_BASE + "  server b 127.0.0.1:8002 check no_such_server_option\n"
    decision = executor.decide(bad)
    assert decision.action is Action.LIVE
    with pytest.raises(ValidationError, match="haproxy.cfg:"):  # the full file's line, not the delta's
        executor.execute(decision, bad)
    assert live.read() == LIVE_BASE and updater.ran == []  # nothing written, nothing sent to HAProxy


def test_a_good_live_change_goes_live_after_checking_only_its_delta(tmp_path):
    live, executor, updater = live_executor(tmp_path)
    good = LIVE_BASE + "  server b 127.0.0.1:8002 check\n"
    assert executor.execute(executor.decide(good), good) is Outcome.LIVE
    assert live.read() == good and len(updater.ran) == 1


class CountingValidator(Validator):
    """The real `haproxy -c`, counting the candidates it is shown."""

    def __init__(self):
        super().__init__()
        object.__setattr__(self, "seen", [])

    def check(self, candidate, shown_as=None):
        self.seen.append(candidate.read_text())
        super().check(candidate, shown_as)


def known_forms_executor(tmp_path, validator):
    live = LiveConfig(tmp_path / "haproxy.cfg")
    live.path.write_text(LIVE_BASE)
    executor = Executor(live, validator, Reloader(), threading.Event(), ReloadRetry(attempts=1), Updater())
    executor.prepare()
    return live, executor


def apply(executor, text):
    return executor.execute(executor.decide(text), text)


def test_a_line_of_a_form_haproxy_accepted_goes_live_without_a_check(tmp_path):
    validator = CountingValidator()
    live, executor = known_forms_executor(tmp_path, validator)
    b = LIVE_BASE + "  server b 127.0.0.1:8002 check\n"
    assert apply(executor, b) is Outcome.LIVE and len(validator.seen) == 1  # a new form: its delta is checked
    c = b + "  server c 10.1.2.3:9000 check\n"
    assert apply(executor, c) is Outcome.LIVE and len(validator.seen) == 1  # same form, other address and port
    assert live.read() == c and executor.known_good == 1
    assert Validator().check(live.path) is None  # and the file HAProxy reads is valid


@pytest.mark.parametrize(
    "line",
    [
        "  server d 127.0.0.1:8004 check inter 2s",  # a new option
        "  server d localhost:8004 check",  # a host name: HAProxy resolves it while parsing
        "  server d [::1]:8004 check",  # another IP version
    ],
)
def test_a_line_of_an_unknown_form_is_checked(tmp_path, line):
    validator = CountingValidator()
    _, executor = known_forms_executor(tmp_path, validator)
    b = LIVE_BASE + "  server b 127.0.0.1:8002 check\n"
    apply(executor, b)
    assert apply(executor, b + line + "\n") is Outcome.LIVE
    assert len(validator.seen) == 2


def test_a_reload_forgets_what_the_old_skeleton_accepted(tmp_path):
    validator = CountingValidator()
    _, executor = known_forms_executor(tmp_path, validator)
    apply(executor, LIVE_BASE + "  server b 127.0.0.1:8002 check weight 5\n")
    assert len(validator.seen) == 1
    skeleton = LIVE_BASE.replace("\nbackend b\n", "\nbackend b\n  balance leastconn\n")
    assert apply(executor, skeleton) is Outcome.RELOADED and len(validator.seen) == 2
    weighted = skeleton + "  server c 127.0.0.1:8003 check weight 7\n"
    assert apply(executor, weighted) is Outcome.LIVE
    assert len(validator.seen) == 3  # 'weight' was accepted under the old skeleton only: checked again
    apply(executor, weighted + "  server d 127.0.0.1:8004 check\n")
    assert len(validator.seen) == 3  # the form of 'a', learnt from the new full config


def test_a_custom_check_command_sees_every_candidate(tmp_path):
    validator = CountingValidator()
    object.__setattr__(validator, "command", "haproxy -c -q -f {path}")
    _, executor = known_forms_executor(tmp_path, validator)
    b = LIVE_BASE + "  server b 127.0.0.1:8002 check\n"
    apply(executor, b)
    apply(executor, b + "  server c 127.0.0.1:8003 check\n")
    assert len(validator.seen) == 2


def test_a_live_install_reaches_the_disk_once_nothing_is_pending(tmp_path, monkeypatch):
    """The live path leaves fsync (milliseconds each) to the idle-time housekeeping, right after."""
    import os

    _, executor = known_forms_executor(tmp_path, Validator())
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    b = LIVE_BASE + "  server b 127.0.0.1:8002 check\n"
    assert apply(executor, b) is Outcome.LIVE and calls == []
    executor.tick()
    assert len(calls) >= 2  # the file and its directory (then the last good copy)
    calls.clear()
    executor.tick()
    assert calls == []  # once is enough


class RefusingDeletes:
    """HAProxy's runtime API as the soak met it (seed 564439984): a drained server whose deletion
    HAProxy refuses ("Server still has connections attached to it") for longer than disco tries."""

    def servers(self, backend, **_):
        # At start the watcher reads HAProxy back; none answers yet, so the file is taken as running.
        raise LiveUpdateFailed("runtime API: no HAProxy answers") from HAProxyUnavailable("no socket")

    def used_connections(self, backend, name):
        return 0

    def delete_server(self, backend, name):
        raise LiveUpdateFailed(f"runtime API refused 'del server {backend}/{name}': Server still has connections")


def test_a_drained_server_haproxy_will_not_delete_is_removed_by_a_reload(tmp_path):
    now = [0.0]
    updater = LiveUpdater(RefusingDeletes(), drain_grace=1.0, clock=lambda: now[0])  # type: ignore[arg-type]
    live = LiveConfig(tmp_path / "haproxy.cfg")
    live.path.write_text(LIVE_BASE)
    reloader = Reloader()
    executor = Executor(live, Validator(), reloader, threading.Event(), ReloadRetry(attempts=1), updater)
    executor.prepare()
    assert executor.in_sync
    updater.draining[("b", "gone")] = 1.0  # removed from the file, draining in HAProxy
    now[0] = 2.0
    executor.tick()  # refused, but still within the time disco keeps trying
    assert executor.in_sync and ("b", "gone") in updater.draining
    now[0] = 10.0
    executor.tick()  # refused past it: HAProxy keeps a server the file does not list
    assert not executor.in_sync and not updater.draining
    decision = executor.decide(LIVE_BASE)
    assert decision.action is Action.RELOAD
    assert executor.execute(decision, LIVE_BASE) is Outcome.RELOADED and executor.in_sync and reloader.calls == 1
