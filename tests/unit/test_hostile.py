"""Hostile catalog data never becomes an extra HAProxy directive or an invalid config.

Property-based (hypothesis) over conversion and the default template, with the real
`haproxy -c` as the oracle.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discovery.state.convert import convert
from discovery.state.model import DesiredState
from discovery.haproxy.render import DEFAULT_TEMPLATE, Renderer

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")

NASTY = st.sampled_from(["\n", "\r", " ", "#", '"', "'", "\\", "${X}", "server evil 6.6.6.6:80", "bind :1",
                         "backend x", "\x00", "\t", "x" * 10_000, "", "::", "[", "]", ":80", "%[src]"])
TEXT = st.one_of(st.text(max_size=40), NASTY, st.lists(NASTY, max_size=4).map("".join),
                 st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True))
PORT = st.one_of(st.integers(-5, 70_000), st.sampled_from(["80", None, 1.5, True]))
ADDRESS = st.one_of(TEXT, st.ip_addresses().map(str))
ENTRY = st.fixed_dictionaries({
    "Node": st.fixed_dictionaries({"Node": TEXT, "Address": ADDRESS}),
    "Service": st.fixed_dictionaries({"ID": TEXT, "Address": ADDRESS, "Port": PORT,
                                      "Tags": st.lists(TEXT, max_size=3),
                                      "Meta": st.dictionaries(TEXT, TEXT, max_size=3)}),
    "Checks": st.lists(st.fixed_dictionaries({"Status": st.sampled_from(["passing", "warning", "critical"])}),
                       max_size=2),
})
RENDERER = Renderer(DEFAULT_TEMPLATE)
VALUES = {"frontend_port": "18080", "stats_port": "18081"}
SERVER_LINE = re.compile(r"^    server [A-Za-z0-9_.:-]+ (\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d+ check inter 1s fall 2 rise 1$")


# New cases on every developer run; the same cases in CI, so a landing is never decided by chance.
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=os.environ.get("CI") == "true")
@given(st.lists(ENTRY, max_size=6))
def test_hostile_entries_render_a_valid_config_with_one_line_per_usable_instance(entries):
    conversion = convert("web", entries)
    text = RENDERER.render(DesiredState((conversion.service,)), VALUES)
    baseline = RENDERER.render(DesiredState((convert("web", []).service,)), VALUES)
    server_lines = [ln for ln in text.splitlines() if ln.strip().startswith("server ")]
    # Nothing but one well-formed server line per usable instance was added to the empty config.
    assert len(server_lines) == len(conversion.service.instances)
    assert all(SERVER_LINE.match(ln) for ln in server_lines), server_lines
    assert [ln for ln in text.splitlines() if ln not in server_lines] == baseline.splitlines()
    # Every entry is either an instance or one reason; reasons are single lines.
    assert all("\n" not in note and "\r" not in note for note in conversion.skipped)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "haproxy.cfg"
        cfg.write_text(text)
        result = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
