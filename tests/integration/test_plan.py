"""`disco plan` against a real Consul, a real HAProxy (runtime API) and `haproxy -c`: its exit
status and what it says, and that it writes nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

from discovery.haproxy.render import DEFAULT_TEMPLATE
from testkit import REPO, wait_until

from .conftest import Stack


def register(stack: Stack, sid: str, port: int, **extra: object) -> None:
    stack.consul.put(
        "/v1/agent/service/register", {"Name": stack.service, "ID": sid, "Address": "127.0.0.1", "Port": port, **extra}
    )


def plan(stack: Stack, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = list(stack.watch_args(*extra))
    argv[argv.index("watch")] = "plan"
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO)


def listing(directory: Path) -> dict[str, float]:
    """Every file but the processes' logs (HAProxy logs its health checks whenever they land)."""
    return {p.name: p.stat().st_mtime for p in directory.iterdir() if not p.name.endswith(".log")}


def test_plan_exit_status_for_no_change_a_new_instance_and_a_broken_template(stack: Stack):
    register(stack, "web-1", 9001)
    wait_until(lambda: stack.consul.passing("web") == ["web-1"], 10, what="web-1 in Consul")
    stack.start_balancer(live=True)
    wait_until(lambda: stack.servers_in_config() == {"web-1"}, 10, what="web-1 in the config")
    # The watcher's first pass may reload HAProxy (the master re-executes and binds its socket
    # anew): the listing below starts once that pass is over and the master answers again.
    wait_until(lambda: "applied" in stack.watch.output(), 20, what="the watcher's first pass")  # type: ignore[union-attr]
    stack.reloads()

    stack.watch.stop()  # type: ignore[union-attr]  # from here on, changes stay unapplied
    before = listing(stack.workdir)
    result = plan(stack)  # the same flags as watch (live: with --runtime-socket)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing to do: HAProxy runs this config" in result.stdout

    register(stack, "web-2", 9002)
    wait_until(lambda: stack.consul.passing("web") == ["web-1", "web-2"], 10, what="web-2 in Consul")
    result = plan(stack)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "live: 1 runtime API operations, no reload" in result.stdout
    assert "  add server web/web-2 127.0.0.1:9002" in result.stdout
    assert "+    server web-2 127.0.0.1:9002" in result.stdout  # the diff
    # A change beyond server addresses is a reload, and plan says why.
    result = plan(stack, "--set", "check_interval=2s")
    assert result.returncode == 3 and "reload: options of server web/web-1 changed" in result.stdout, result.stdout

    broken = stack.workdir / "broken.cfg.j2"
    template = DEFAULT_TEMPLATE.read_text()
    assert "    http-request disable-l7-retry if !METH_GET\n" in template
    broken.write_text(
        template.replace(
            "    http-request disable-l7-retry if !METH_GET\n",
            "    http-request disable-l7-retry if !METH_GET\n    balance nonsense\n",
        )
    )
    result = plan(stack, "--template", str(broken))
    assert result.returncode == 4, result.stdout + result.stderr
    assert "HAProxy rejected the rendered config" in result.stdout and "nonsense" in result.stdout
    broken.write_text("{% for x in %}")
    result = plan(stack, "--template", str(broken))
    assert result.returncode == 4 and "template" in result.stdout
    broken.unlink()

    assert listing(stack.workdir) == before  # nothing written, renamed or left beside the config
    assert stack.servers_in_config() == {"web-1"}


def test_plan_with_bad_input_and_with_consul_down(stack: Stack, tmp_path: Path):
    result = plan(stack, "--wait", "nonsense")
    assert result.returncode == 2 and result.stderr.startswith("disco: error: invalid duration")
    stack.consul.stop()
    result = plan(stack)
    assert result.returncode == 1 and "unavailable" in result.stderr
