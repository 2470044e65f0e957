"""CLI parsing and error reporting: one line on stderr and a non-zero exit, before any I/O."""

import pytest
from typer.testing import CliRunner

from discovery.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "args, message",
    [
        (["register", "--service", "web", "--port", "70000", "--address", "10.0.0.1"], "outside 1..65535"),
        (["register", "--service", "web app", "--port", "80", "--address", "10.0.0.1"], "service name"),
        (
            ["register", "--service", "web", "--port", "80", "--address", "10.0.0.1", "--interval", "soon"],
            "invalid duration",
        ),
        (
            ["register", "--service", "web", "--port", "80", "--address", "10.0.0.1", "--meta", "novalue"],
            "expected KEY=VALUE",
        ),
        (["watch", "--service", "web", "--output", "/tmp/x.cfg", "--wait", "2s:1s"], "MAX must not be below MIN"),
        (["watch", "--service", "bad name", "--output", "/tmp/x.cfg"], "service name"),
        (["watch", "--service", "web", "--output", "/no/such/dir/x.cfg"], "does not exist"),
        (["watch", "--service", "web", "--output", "/tmp/x.cfg", "--template", "/no/such.j2"], "no such file"),
        (
            ["watch", "--service", "web", "--output", "/tmp/x.cfg", "--check-cmd", "no-such-checker {path}"],
            "command not found: no-such-checker",
        ),
        (
            ["watch", "--service", "web", "--output", "/tmp/x.cfg", "--reload-cmd", "no-such-reloader now"],
            "command not found: no-such-reloader",
        ),
        (
            ["watch", "--service", "web", "--output", "/tmp/x.cfg", "--master-socket", "/s", "--reload-cmd", "x"],
            "not both",
        ),
        (["watch", "--service", "web", "--output", "/tmp/x.cfg", "--consul-addr", "ftp://x"], "invalid Consul address"),
        (["demo", "--consul-ports", "8301,8302"], "--consul-ports '8301,8302': expected three port numbers"),
        (["demo", "--consul-ports", "8301,8302,70000"], "port 70000 (Consul server RPC, --consul-ports) is not a port"),
        (["registrator", "--network", "web", "--host-ip", "127.0.0.1"], "not both"),
        (["registrator", "--host-ip", "localhost"], "not an IP address"),
        (["registrator", "--resync", "500ms"], "at least 1s"),
        (["registrator", "--consul-addr", "ftp://x"], "invalid Consul address"),
    ],
)
def test_bad_input_gives_one_error_line_and_exit_2(args, message):
    """The README promises exit status 2 for bad input (1 is for runtime failures)."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("disco: error:") and message in lines[0]


@pytest.mark.parametrize("command", ["register", "watch", "demo", "registrator"])
def test_help_documents_each_command_with_an_example(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and f"disco {command}" in result.output


def test_missing_token_file_is_bad_input(tmp_path):
    """CONSUL_HTTP_TOKEN_FILE naming a missing file: one line, exit 2, before any thread starts."""
    result = runner.invoke(
        app,
        ["watch", "--service", "web", "--output", str(tmp_path / "x.cfg")],
        env={"CONSUL_HTTP_TOKEN_FILE": str(tmp_path / "missing-token"), "CONSUL_HTTP_TOKEN": ""},
    )
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines == [
        f"disco: error: cannot read CONSUL_HTTP_TOKEN_FILE {tmp_path / 'missing-token'}: No such file or directory"
    ]


def test_version_prints_the_distribution_and_version() -> None:
    from discovery import DISTRIBUTION, __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"disco {__version__} ({DISTRIBUTION})"


@pytest.mark.parametrize(
    "command", [[], ["watch"], ["plan"], ["status"], ["explain"], ["register"], ["registrator"], ["demo"]]
)
def test_flags_show_as_flags_in_help(command: list[str]) -> None:
    """A boolean flag takes no value, so --help must not show it with a value type."""
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help" in result.output


def test_watch_and_plan_take_the_shared_options_from_one_declaration():
    import inspect

    from discovery.cli import options as o
    from discovery.cli.plan import plan
    from discovery.cli.watch import watch

    shared = [name for name, _, _ in o.SHARED]
    for command, own in ((watch, ["stale", "once", "dry_run"]), (plan, ["json_"])):
        names = list(inspect.signature(command).parameters)
        assert [n for n in names if n in shared] == shared  # every one, in one order
        assert set(own) <= set(names)
    given = {name: default for name, _, default in o.SHARED} | {"failover_dc": ["dc2"], "discover": True}
    opts = o.WatchOptions(given).resolve(once=True)
    assert opts["failover-dc"] == ("dc2",) and opts["discover"] is True and opts["once"] is True
