"""The watcher's retry after a pass that could not write the file or left HAProxy out of step, and
its idle-time save of the last good copy (issue 19's soak; the integration tests in
tests/integration/test_full_disk.py need root for a tmpfs, these run anywhere)."""

from __future__ import annotations

from pathlib import Path

from discovery.errors import OutputError
from discovery.haproxy.render import DEFAULT_TEMPLATE
from discovery.pipeline.events import Failed
from discovery.pipeline.watcher import RETRY_MIN, WatchConfig, Watcher


class NoCatalog:
    requests = 0
    stale_reasks = 0

    def interrupt(self):
        pass


def watcher(tmp_path: Path, now: list[float]) -> Watcher:
    config = WatchConfig(services=("web",), template=DEFAULT_TEMPLATE, output=tmp_path / "haproxy.cfg", validator=None)
    return Watcher(NoCatalog(), config, clock=lambda: now[0])  # type: ignore[arg-type]


def test_passes_started_by_new_changes_neither_move_nor_back_off_a_retry_due(tmp_path: Path):
    now = [100.0]
    w = watcher(tmp_path, now)
    full = OutputError("cannot write haproxy.cfg: No space left on device")
    w._schedule_retry(full)
    assert w._retry_at == 100.0 + RETRY_MIN
    for t in (100.1, 100.2, 100.3, 100.4):  # changes keep coming, each pass fails the same way
        now[0] = t
        w._schedule_retry(full)
    assert w._retry_at == 100.0 + RETRY_MIN
    now[0] = 100.0 + RETRY_MIN  # the retry itself fails: now it backs off
    w._schedule_retry(full)
    assert w._retry_at == 100.0 + RETRY_MIN + 2 * RETRY_MIN
    w._schedule_retry(None)  # a pass that worked
    assert w._retry_at is None


def test_a_last_good_copy_that_cannot_be_saved_is_reported_once_and_saved_later(tmp_path: Path):
    now = [0.0]
    w = watcher(tmp_path, now)
    assert w.executor is not None
    failures: list[Failed] = []
    w.events.subscribe(lambda e: failures.append(e) if isinstance(e, Failed) else None)
    w.executor.live.path.write_text("global\n")
    w.executor._good_unsaved = "global\n"  # HAProxy took it; the copy is due
    w.executor.live.last_good.mkdir()  # the copy cannot be written (as on a full disk)
    w._tick()
    w._tick()
    assert [f.stage for f in failures] == ["save"] and "last-good" in str(failures[0].error)
    w.executor.live.last_good.rmdir()
    w._tick()
    assert w.executor.live.last_good.read_text() == "global\n" and len(failures) == 1
