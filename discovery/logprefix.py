"""Run a command with every line of its output prefixed by a name: ``python -m discovery.logprefix NAME -- CMD...``.

In a container, supervisord sends every program's output to the container's
stdout so ``docker logs`` shows them all; this prefix says which program wrote
each line.  Signals are passed to the child and its exit status is ours, so
supervisord stops and restarts the real program.
"""

from __future__ import annotations

import signal
import subprocess
import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m discovery.logprefix NAME -- COMMAND [ARG...]", file=sys.stderr)
        return 2
    prefix, command = f"[{args[0]}] ".encode(), args[2:]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
    assert child.stdout is not None
    out = sys.stdout.buffer
    for line in iter(child.stdout.readline, b""):
        out.write(prefix + line)
        out.flush()
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
