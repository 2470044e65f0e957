"""What tests and benchmarks share: reserved ports, real processes, a Consul dev agent, a
three-server Consul cluster.

Not part of the shipped ``discovery`` package.  ``tests/`` and ``bench/`` both import this
package; neither imports the other.
"""

from __future__ import annotations

from .cluster import ClusterServer, ConsulCluster
from .consul import ConsulAgent
from .ports import PUBLISHED, PortAllocator, PortsExhausted, take_port, take_ports
from .procs import DISCO, REPO, Proc, instances_reached, wait_until, webapp_command

__all__ = [
    "DISCO",
    "PUBLISHED",
    "REPO",
    "ClusterServer",
    "ConsulAgent",
    "ConsulCluster",
    "PortAllocator",
    "PortsExhausted",
    "Proc",
    "instances_reached",
    "take_port",
    "take_ports",
    "wait_until",
    "webapp_command",
]
