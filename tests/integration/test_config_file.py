"""`disco watch --config FILE` gives what the same flags give; `--log-format json` logs one JSON
object per line with the fields of the text lines."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from testkit import DISCO, REPO, ConsulAgent, wait_until


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DISCO, *argv], capture_output=True, text=True, timeout=60, cwd=REPO)


def test_config_file_gives_the_same_config_as_flags_and_json_logs_parse(consul: ConsulAgent, tmp_path: Path):
    consul.put(
        "/v1/agent/service/register",
        {"Name": "web", "ID": "web-1", "Address": "127.0.0.1", "Port": 9001, "Tags": ["blue"]},
    )
    consul.put("/v1/agent/service/register", {"Name": "web", "ID": "web-2", "Address": "127.0.0.1", "Port": 9002})
    consul.put(
        "/v1/agent/service/register",
        {"Name": "api", "ID": "api-1", "Address": "127.0.0.1", "Port": 9101, "Tags": ["blue"]},
    )
    wait_until(lambda: consul.passing("api") == ["api-1"], 10, what="the catalog")

    by_flags = tmp_path / "flags.cfg"
    result = run(
        "watch",
        "--once",
        "--service",
        "web",
        "--service",
        "api",
        "--tag",
        "blue",
        "--output",
        str(by_flags),
        "--consul-addr",
        consul.url,
        "--set",
        "frontend_port=8081",
        "--set",
        "stats_port=8082",
        "--set",
        "bind_address=127.0.0.1",
        "--wait",
        "20ms:200ms",
        "--log-format",
        "json",
    )
    assert result.returncode == 0, result.stderr

    by_file = tmp_path / "file.cfg"
    config = tmp_path / "watch.toml"
    config.write_text(
        f'service = ["web", "api"]\ntag = "blue"\noutput = "{by_file}"\nconsul-addr = "{consul.url}"\n'
        f'wait = "20ms:200ms"\nonce = true\n[set]\nfrontend_port = 8081\nstats_port = 8082\n'
        f'bind_address = "127.0.0.1"\n'
    )
    from_file = run("watch", "--config", str(config))
    assert from_file.returncode == 0, from_file.stderr
    assert by_file.read_text() == by_flags.read_text()
    assert "server web-1 127.0.0.1:9001" in by_file.read_text() and "web-2" not in by_file.read_text()

    # A flag wins over the file.
    override = tmp_path / "override.cfg"
    assert (
        run("watch", "--config", str(config), "--output", str(override), "--set", "frontend_port=9999").returncode == 0
    )
    assert "bind 127.0.0.1:9999" in override.read_text() and "bind 127.0.0.1:8082" in override.read_text()

    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines
    records = [json.loads(ln) for ln in lines]  # every line is one JSON object
    assert all(set(r) >= {"time", "level", "logger", "message"} for r in records)
    assert any(r["message"].startswith("applied 2 backends, 2 servers: written") for r in records)
    text = [ln for ln in from_file.stderr.splitlines() if ln.strip()]  # the text lines say the same

    def shape(message: str) -> str:  # durations differ from run to run
        return re.sub(r"\d+(\.\d+)?", "N", message)

    assert sorted(shape(r["message"]) for r in records) == sorted(shape(ln.split(": ", 1)[1]) for ln in text)
