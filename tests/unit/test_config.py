"""The TOML config file of `disco watch`: every flag has a key, flags win, unknown keys refused."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from discovery.cli import app
from discovery.config import WATCH_KEYS, load_file, resolve
from discovery.errors import ConfigError

runner = CliRunner()


def test_every_watch_flag_has_a_key():
    command = typer.main.get_command(app).commands["watch"]  # type: ignore[attr-defined]
    flags = {o[2:] for p in command.params for o in p.opts if o.startswith("--")} - {"config", "help"}
    assert flags <= set(WATCH_KEYS), flags - set(WATCH_KEYS)
    assert set(WATCH_KEYS) <= flags


def test_flags_win_over_the_file_and_set_values_merge(tmp_path: Path):
    path = tmp_path / "watch.toml"
    path.write_text(
        'service = ["web", "api"]\noutput = "/tmp/x.cfg"\nwait = "1s"\ngate_share = 0.5\n'
        "once = true\n[set]\nfrontend_port = 80\nstats_port = 1936\n"
    )
    opts = resolve({"wait": "2s", "set": {"frontend_port": "8080"}, "once": False}, path)
    assert opts["service"] == ("web", "api") and opts["output"] == "/tmp/x.cfg"
    assert opts["wait"] == "2s" and opts["gate-share"] == 0.5 and opts["once"] is True
    assert opts["set"] == {"frontend_port": "8080", "stats_port": "1936"}
    assert opts["drain-grace"] == "10s"  # the default


@pytest.mark.parametrize(
    "text, message",
    [
        ('servce = ["web"]\n', "unknown key 'servce'"),
        ('gate-share = "half"\n', "key 'gate-share' must be a number"),
        ("service = [1]\n", "key 'service' must be a list of strings"),
        ('once = "yes"\n', "key 'once' must be true or false"),
        ("service = \n", "not valid TOML"),
    ],
)
def test_bad_files_are_refused_naming_the_file_and_key(tmp_path: Path, text: str, message: str):
    path = tmp_path / "watch.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"config file {path}: .*{message}"):
        load_file(path)


def test_unknown_key_is_one_line_and_exit_2(tmp_path: Path):
    path = tmp_path / "watch.toml"
    path.write_text('service = "web"\noutput = "/tmp/x.cfg"\nfrontend_port = 80\n')
    for command in ("watch", "plan"):
        result = runner.invoke(app, [command, "--config", str(path)])
        assert result.exit_code == 2, result.output
        assert result.stderr.strip().splitlines() == [f"disco: error: config file {path}: unknown key 'frontend_port'"]


def test_missing_required_options_and_a_busy_listen_address(tmp_path: Path):
    result = runner.invoke(app, ["watch", "--output", str(tmp_path / "x.cfg")])
    assert result.exit_code == 2 and "missing --service" in result.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(
            app, ["watch", "--service", "web", "--output", str(tmp_path / "x.cfg"), "--listen", f"127.0.0.1:{port}"]
        )
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1].startswith(f"disco: error: --listen 127.0.0.1:{port}: cannot listen")
    result = runner.invoke(app, ["watch", "--service", "web", "--output", str(tmp_path / "x.cfg"), "--listen", "nope"])
    assert result.exit_code == 2 and "invalid --listen 'nope'" in result.stderr


def test_stale_and_max_stale_from_the_file_and_their_defaults(tmp_path: Path):
    path = tmp_path / "watch.toml"
    path.write_text('service = "web"\nstale = true\nmax_stale = "500ms"\n')
    assert (resolve({}, path)["stale"], resolve({}, path)["max-stale"]) == (True, "500ms")
    assert resolve({"max-stale": "5s"}, path)["max-stale"] == "5s"
    assert (resolve({}, None)["stale"], resolve({}, None)["max-stale"]) == (False, "2s")


def test_a_bad_max_stale_is_exit_2(tmp_path: Path):
    result = runner.invoke(
        app,
        [
            "watch",
            "--service",
            "web",
            "--output",
            str(tmp_path / "x.cfg"),
            "--dry-run",
            "--check-cmd",
            "true",
            "--stale",
            "--max-stale",
            "soon",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "invalid duration 'soon'" in result.stderr


def test_blocking_wait_reaches_the_watches_and_is_bounded(tmp_path: Path):
    from discovery.config import watch_config

    path = tmp_path / "watch.toml"
    path.write_text(f'service = "web"\noutput = "{tmp_path / "x.cfg"}"\ncheck_cmd = "true"\nblocking_wait = "10s"\n')
    assert watch_config(resolve({}, path)).timing.wait == 10.0
    assert (
        watch_config(resolve({}, None) | {"service": ("web",), "output": "x", "check-cmd": "true"}).timing.wait == 300
    )
    with pytest.raises(ConfigError, match="invalid --blocking-wait '20m'"):
        watch_config(resolve({"blocking-wait": "20m"}, path))
