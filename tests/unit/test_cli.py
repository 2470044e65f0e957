"""CLI parsing and error reporting: one line on stderr and a non-zero exit, before any I/O."""

import pytest
from typer.testing import CliRunner

from discovery.cli import app

runner = CliRunner()


@pytest.mark.parametrize("args, message", [
    (["register", "--service", "web", "--port", "70000", "--address", "10.0.0.1"], "outside 1..65535"),
    (["register", "--service", "web app", "--port", "80", "--address", "10.0.0.1"], "service name"),
    (["register", "--service", "web", "--port", "80", "--address", "10.0.0.1", "--interval", "soon"],
     "invalid duration"),
    (["register", "--service", "web", "--port", "80", "--address", "10.0.0.1", "--meta", "novalue"],
     "expected KEY=VALUE"),
    (["watch", "--service", "web", "--output", "/tmp/x.cfg", "--wait", "2s:1s"], "MAX must not be below MIN"),
    (["watch", "--service", "bad name", "--output", "/tmp/x.cfg"], "service name"),
    (["watch", "--service", "web", "--output", "/no/such/dir/x.cfg"], "does not exist"),
    (["watch", "--service", "web", "--output", "/tmp/x.cfg", "--template", "/no/such.j2"], "not found"),
    (["watch", "--service", "web", "--output", "/tmp/x.cfg", "--master-socket", "/s", "--reload-cmd", "x"],
     "not both"),
    (["watch", "--service", "web", "--output", "/tmp/x.cfg", "--consul-addr", "ftp://x"], "invalid Consul address"),
])
def test_bad_input_gives_one_error_line_and_nonzero_exit(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("disco: error:") and message in lines[0]


@pytest.mark.parametrize("command", ["register", "watch", "demo"])
def test_help_documents_each_command_with_an_example(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and f"disco {command}" in result.output
