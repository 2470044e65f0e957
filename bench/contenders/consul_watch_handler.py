#!/usr/bin/env python3
"""The lab's approach with Consul, as a user would write it: `consul watch -type=service` runs this
handler on every change with the service's instances as JSON on stdin; it rewrites the server lines
of haproxy.cfg and asks HAProxy's master to reload.  No validation, no retries (as measured by the
issue: "about 230 ms p50 and 300 ms max without any validation").

Usage: consul watch -type=service -service=web -passingonly=true HANDLER BASE_CFG OUTPUT MASTER_SOCKET
"""

import json
import socket
import sys

base, output, master = sys.argv[1:4]
entries = json.load(sys.stdin) or []
servers = "\n".join(
    f"    server {e['Service']['ID']} {e['Service']['Address'] or e['Node']['Address']}:{e['Service']['Port']} "
    "check inter 1s fall 2 rise 1" for e in entries)
with open(base) as src, open(output, "w") as dst:
    dst.write(src.read().replace("{servers}", servers))
with socket.socket(socket.AF_UNIX) as sock:
    sock.connect(master)
    sock.sendall(b"reload\n")
    sock.shutdown(socket.SHUT_WR)
    sock.recv(4096)
