"""A seeded fault soak (issue 19): three Consul servers and a client agent, HAProxy, `disco watch`
with live apply, churn and load all along, and faults in a seeded random order; after each fault
Consul's passing instances, the file and HAProxy must agree before a deadline.

    .venv/bin/python bench/soak.py --minutes 10            # a random seed, printed
    .venv/bin/python bench/soak.py --minutes 10 --seed 42  # replays seed 42's faults and draws

Prints a summary table; exit 1 on any divergence, failed request outside HAProxy-down windows,
watcher restart nobody asked for, or problem a fault saw.  Needs root for the full-disk fault
(a tmpfs under the output directory); without it that fault is skipped and said so.  ``--dockerd``
adds a real restart of a private Docker engine under ``disco registrator`` (root; testkit/dockerd.py).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testkit.faults import DEFAULT_FAULTS, FAULTS
from testkit.soakrun import run_soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to inject faults")
    parser.add_argument("--seed", type=int, default=None, help="replay this seed (default: a random one, printed)")
    parser.add_argument(
        "--faults",
        nargs="*",
        default=list(DEFAULT_FAULTS),
        choices=list(FAULTS),
        help="fault kinds to use (default: all but dockerd-restart)",
    )
    parser.add_argument(
        "--dockerd", action="store_true", help="add dockerd-restart: a private Docker engine under `disco registrator`"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs here (default: a temporary directory)")
    args = parser.parse_args()
    if args.dockerd and "dockerd-restart" not in args.faults:
        args.faults.append("dockerd-restart")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop what the soak started, as Ctrl-C does
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    print(f"soak: seed {seed} ({args.minutes:g} min); replay: bench/soak.py --minutes {args.minutes:g} --seed {seed}")
    sys.stdout.flush()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f"soak-{seed}-", dir=args.workdir))
    else:
        workdir = Path(tempfile.mkdtemp(prefix=f"soak-{seed}-"))
    print(f"logs in {workdir}")
    result = run_soak(workdir, seed, args.minutes * 60, say=lambda line: print(line, flush=True), kinds=args.faults)
    print()
    print(result.table())
    for divergence in result.divergences:
        print()
        print(divergence)
    print()
    print("FAILED" if result.failed else "OK", f"(seed {seed})")
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
