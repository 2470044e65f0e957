"""decide(): a change of more runtime operations than a reload takes time for is a reload."""

from __future__ import annotations

from discovery.pipeline.decide import Action, decide, live_limit

HEAD = "global\n  stats socket /run/admin.sock level admin\ndefaults\n  mode http\n"


def config(backends: int, servers: int, first: int = 0) -> str:
    """``backends`` backends, each with ``servers`` servers numbered from ``first``."""
    text = HEAD
    for b in range(backends):
        text += f"backend b{b}\n  balance roundrobin\n"
        text += "".join(
            f"  server s{n} 10.{b // 250}.{b % 250}.{n % 250 + 1}:{8000 + n}\n" for n in range(first, servers)
        )
    return text


def test_the_limit_grows_with_the_config_as_a_reload_does():
    assert live_limit(0) == 312
    assert live_limit(10_000) == 2_187
    assert live_limit(50_000) == 9_687


def test_a_first_pass_onto_empty_backends_is_a_reload():
    # the watcher's first pass on HAProxy started with every backend and no server (--bootstrap)
    decision = decide(config(50, 0), config(50, 20), in_sync=True, live_capable=True)
    assert decision.action is Action.RELOAD
    assert decision.reason == "more than 499 runtime operations (a reload takes less time)"


def test_up_to_the_limit_a_change_goes_live():
    running = config(10, 100)  # 1,000 servers
    assert live_limit(1_050) == 509
    candidate = config(10, 105)  # 50 servers more, 1,050 in all
    decision = decide(running, candidate, in_sync=True, live_capable=True)
    assert decision.action is Action.LIVE and len(decision.ops) == 50
    big = config(10, 152)  # 520 servers more: 1,520 in all, a limit of 597
    assert decide(running, big, in_sync=True, live_capable=True).action is Action.LIVE
    bigger = config(10, 165)  # 650 servers more: 1,650 in all, a limit of 621
    decision = decide(running, bigger, in_sync=True, live_capable=True)
    assert decision.action is Action.RELOAD and decision.reason.startswith("more than 621 runtime operations")


def test_removals_count_too():
    # 600 servers removed, 400 left: a limit of 387
    decision = decide(config(10, 100), config(10, 40), in_sync=True, live_capable=True)
    assert decision.action is Action.RELOAD and decision.reason.startswith("more than 387 runtime operations")
