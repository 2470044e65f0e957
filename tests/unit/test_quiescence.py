from discovery.pipeline.quiescence import Quiescence


def test_nothing_pending_nothing_due():
    q = Quiescence(0.05, 1.0)
    assert q.deadline() is None and not q.due(100.0)


def test_first_change_after_a_quiet_spell_is_due_at_once():
    q = Quiescence(0.05, 1.0)
    q.change(10.0)
    assert q.due(10.0)


def test_change_soon_after_an_apply_waits_min():
    q = Quiescence(0.05, 1.0)
    q.change(10.0)
    q.flushed(10.0)
    q.change(10.03)
    assert not q.due(10.07)
    assert q.due(10.08)


def test_change_after_a_quiet_min_never_waits_on_a_timer():
    """Nothing else pending and nothing for ``min``: the change is due the moment it arrives."""
    q = Quiescence(0.05, 1.0)
    q.change(10.0)
    q.flushed(10.0)
    q.change(10.2)
    assert q.due(10.2)
    q.flushed(10.2)
    q.change(10.26)  # after a quiet min, even though the last apply was recent
    assert q.due(10.26)


def test_burst_is_collapsed_until_it_pauses():
    q = Quiescence(0.05, 1.0)
    q.flushed(9.9)
    for t in (10.0, 10.03, 10.06, 10.09):
        q.change(t)
    assert not q.due(10.12)
    assert q.due(10.14)


def test_never_later_than_max_after_the_first_change():
    q = Quiescence(0.05, 0.5)
    q.flushed(9.9)
    t = 10.0
    while t < 10.6:
        q.change(t)
        t += 0.01
    assert q.deadline() == 10.5


def test_flapping_is_limited_by_the_apply_budget():
    """A change every 100 ms for 30 s: a burst, then one apply per spacing, not one per change."""
    q = Quiescence(0.05, 1.0, burst=5, spacing=0.5)
    applies, t, changes = 0, 0.0, 0
    step = 0.01
    next_change = 0.0
    while t < 30.0:
        if t >= next_change:
            q.change(t)
            changes += 1
            next_change += 0.1
        if q.due(t):
            q.flushed(t)
            applies += 1
        t = round(t + step, 6)
    assert changes == 300
    assert applies <= 5 + 30 / 0.5 + 1


def test_burst_of_separate_changes_is_applied_at_once_then_spaced():
    q = Quiescence(0.05, 1.0, burst=3, spacing=0.5)
    times = []
    t = 0.0
    for _ in range(5):
        q.change(t)
        t = q.deadline()
        times.append(round(t, 3))
        q.flushed(t)
        t += 0.01
    assert times[:3] == [0.0, 0.06, 0.12]  # the burst: the first at once, then each after MIN
    assert times[3] - times[2] > 0.3  # the bucket runs dry (it refilled a little meanwhile)
    assert times[4] - times[3] >= 0.49  # then one per spacing


def test_budget_refills_after_a_quiet_spell():
    q = Quiescence(0.05, 1.0, burst=2, spacing=0.5)
    for t in (0.0, 0.1, 0.2):
        q.change(t)
        q.flushed(q.deadline())
    q.change(10.0)
    assert q.deadline() == 10.0


def test_live_applies_spend_no_reload_budget():
    q = Quiescence(0.01, 1.0, burst=2, spacing=0.5)
    q.flushed(-0.5, reloaded=False)
    t = 0.0
    for _ in range(20):
        q.change(t)
        deadline = q.deadline()
        assert deadline <= t + 0.01 + 1e-9  # never held back by the reload budget
        q.flushed(deadline, reloaded=False)
        t = deadline + 0.01
