import pytest

from discovery.errors import ReloadError
from discovery.haproxy.master import CommandReloader, parse_show_proc

SHOW_PROC = """#<PID>          <type>          <reloads>       <uptime>        <version>
2422            master          2 [failed: 1]   0d00h00m02s     2.6.12-1+deb12u4
# workers
2434            worker          1               0d00h00m01s     2.6.12-1+deb12u4
2440            worker          0               0d00h00m00s     2.6.12-1+deb12u4
# programs

"""


def test_show_proc_is_parsed():
    state = parse_show_proc(SHOW_PROC)
    assert (state.master_pid, state.reloads, state.failed, state.workers) == (2422, 2, 1, (2434, 2440))


def test_unexpected_answer_is_an_error():
    with pytest.raises(ReloadError, match="unexpected answer"):
        parse_show_proc("Unknown command\n")


def test_reload_command_failure_carries_its_last_line():
    with pytest.raises(ReloadError, match="exited 3: boom"):
        CommandReloader("sh -c 'echo first >&2; echo boom >&2; exit 3'").reload()
    assert CommandReloader("true").reload() == "true exited 0"


def test_reload_command_runs_without_a_shell():
    reloader = CommandReloader("printf %s $HOME;touch")
    assert reloader.argv == ["printf", "%s", "$HOME;touch"]
    assert reloader.reload() == "printf exited 0"  # no shell: nothing expanded, no second command
