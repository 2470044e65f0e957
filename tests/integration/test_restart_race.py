"""HAProxy restarted at the moment the watcher writes a new file (issue 19, found by the soak).

supervisord (or a person) restarts HAProxy; the new master reads the file just before the
watcher renames a newer one over it, and its sockets appear just after the watcher tried to
reload.  The watcher then sees no HAProxy answering and writes the file for "when it starts",
but the HAProxy that started already read the older one.  Before the fix the watcher marked the
new config as running and never looked again: HAProxy ran without a server that Consul and the
file had.  A config written while no HAProxy answers is not known to run until HAProxy answers
and takes it.

The race is made deterministic: HAProxy is started on the older file with its master CLI on a
path the watcher does not know; once it answers, the newer file is put back and the watcher's
master socket path is linked to the real one, so the first HAProxy the watcher can reach is one
that read the older file.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from discovery.errors import HAProxyUnavailable, ReloadError
from discovery.haproxy.master import MasterSocket
from discovery.haproxy.runtime import RuntimeAPI
from testkit import wait_until

from .conftest import Stack
from .test_divergence import register, webapp


def answers(path: Path) -> bool:
    try:
        MasterSocket(path).state()
    except (HAProxyUnavailable, ReloadError):
        return False
    return True


def test_a_config_written_while_haproxy_restarts_is_reloaded_once_haproxy_answers(stack: Stack):
    first, second = webapp(stack, "first"), webapp(stack, "second")
    register(stack, "web-1", first)
    wait_until(lambda: stack.consul.passing("web") == ["web-1"], 10, what="web-1 passing")
    stack.start_balancer(live=True)
    api = RuntimeAPI(stack.admin_socket)
    wait_until(lambda: set(api.servers("web")) == {"web-1"}, 20, what="HAProxy serving web-1")
    older = stack.output.read_text()

    # HAProxy dies (master and workers) ...
    assert stack.haproxy is not None and stack.watch is not None
    stack.haproxy.signal(signal.SIGKILL)
    stack.haproxy.popen.wait(10)
    stack.master_socket.unlink()
    stack.admin_socket.unlink(missing_ok=True)
    # ... and a change arrives while none answers: the watcher writes it for "when HAProxy starts".
    stack.consul.put(
        "/v1/agent/service/register", {"ID": "web-2", "Name": "web", "Address": "127.0.0.1", "Port": second}
    )
    wait_until(lambda: "web-2" in stack.output.read_text(), 20, what="web-2 in the file")
    wait_until(lambda: "reloaded once one answers" in stack.watch.output(), 20, what="the watcher's note")
    newer = stack.output.read_text()

    # The restarted HAProxy read the older file; the newer one lands as its sockets come up.
    hidden = stack.workdir / "master-hidden.sock"
    stack.output.write_text(older)
    stack.haproxy = stack.spawn(["haproxy", "-W", "-S", f"{hidden},mode,600", "-f", str(stack.output)], "haproxy-2")
    wait_until(lambda: answers(hidden), 10, what="the restarted HAProxy's master CLI")
    wait_until(lambda: set(api.servers("web")) == {"web-1"}, 10, what="the restarted HAProxy serving the older file")
    tmp = stack.output.with_name("haproxy.cfg.put-back")
    tmp.write_text(newer)
    os.replace(tmp, stack.output)
    stack.master_socket.symlink_to(hidden)

    # Consul and the file have web-2: HAProxy must come to run it, with no further change in Consul.
    wait_until(
        lambda: set(api.servers("web")) == {"web-1", "web-2"}, 30, what="HAProxy running web-2 after its restart"
    )
    assert stack.output.read_text() == newer
