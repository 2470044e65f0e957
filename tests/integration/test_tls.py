"""HTTPS to Consul with a CA (CONSUL_HTTP_SSL / an https:// address, CONSUL_CACERT), against a
real agent whose certificates `consul tls` made."""

from __future__ import annotations

import json
import os
import subprocess

import requests

from testkit import DISCO, ConsulAgent, take_port, wait_until


def test_watch_reads_consul_over_https_with_a_ca(tmp_path):
    tls = tmp_path / "tls"
    tls.mkdir()
    agent = ConsulAgent(tmp_path)
    for args in (["tls", "ca", "create"], ["tls", "cert", "create", "-server", "-dc", "dc1"]):
        subprocess.run([agent.binary, *args], cwd=tls, check=True, capture_output=True, timeout=60)
    https_port = take_port()
    config = json.loads(agent.config.read_text())
    config["ports"]["https"] = https_port
    config.update(
        {
            "ca_file": str(tls / "consul-agent-ca.pem"),
            "cert_file": str(tls / "dc1-server-consul-0.pem"),
            "key_file": str(tls / "dc1-server-consul-0-key.pem"),
            "verify_incoming": False,
        }
    )
    agent.config.write_text(json.dumps(config))
    agent.start()
    try:
        agent.put("/v1/agent/service/register", {"Name": "web", "ID": "web-1", "Address": "127.0.0.1", "Port": 8080})
        url = f"https://127.0.0.1:{https_port}"
        ca = str(tls / "consul-agent-ca.pem")
        wait_until(lambda: requests.get(f"{url}/v1/status/leader", verify=ca, timeout=2).ok, 20, what="HTTPS up")
        env = {
            **os.environ,
            "CONSUL_HTTP_ADDR": f"127.0.0.1:{https_port}",
            "CONSUL_HTTP_SSL": "true",
            "CONSUL_CACERT": ca,
        }
        result = subprocess.run(
            [
                *DISCO,
                "watch",
                "--service",
                "web",
                "--output",
                str(tmp_path / "h.cfg"),
                "--once",
                "--dry-run",
                "--set",
                "frontend_port=18080",
                "--set",
                "stats_port=18081",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "server web-1 127.0.0.1:8080" in result.stdout
    finally:
        agent.stop()
