"""A private Docker engine of a test's own, to restart for real without touching the machine's.

``dockerd`` with its own ``--data-root``, ``--exec-root`` (and so its own containerd), ``--pidfile``
and a unix socket, all under the work directory; no default bridge, no iptables rules, no masquerade
(nothing on the host's firewall): containers join a user-defined bridge network of this engine, from
an address pool of its own (10.199.0.0/16), removed when the engine is closed.
The machine's main engine, which other suites use, is only read from (``docker save`` of a base
image built locally by scripts/build-test-images.sh, loaded here: there is no registry).  Needs
root, as any dockerd.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .procs import DISCO, Proc, wait_until

__all__ = ["BASE_IMAGE", "DOCKED_SERVICE", "DockedApps", "PrivateDockerd", "private_dockerd_missing"]

BASE_IMAGE = "debian:bookworm-slim"


def private_dockerd_missing() -> str:
    """Why a private engine cannot run here ('' when it can)."""
    if os.geteuid() != 0:
        return "a private dockerd needs root"
    missing = [tool for tool in ("dockerd", "containerd", "docker") if shutil.which(tool) is None]
    return f"a private dockerd needs {', '.join(missing)}" if missing else ""


class PrivateDockerd:
    """One dockerd of our own; :meth:`restart` stops it (SIGTERM: its containers stop with it) and starts it
    again on the same state, as an engine upgrade or ``systemctl restart docker`` does."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "dockerd"
        self.dir.mkdir(parents=True)
        # Sockets live under the exec root (containerd's ``containerd.sock.ttrpc`` among them), and a unix
        # socket's path is at most 107 bytes: a short directory of its own, not under ``workdir``.
        self.run_dir = Path(tempfile.mkdtemp(prefix="dk-", dir="/tmp"))
        self.socket = self.run_dir / "docker.sock"
        self.proc: Proc | None = None
        self.restarts = 0

    @property
    def host(self) -> str:
        """For ``DOCKER_HOST`` and ``docker -H``."""
        return f"unix://{self.socket}"

    def start(self) -> None:
        self.proc = Proc(
            [
                *("dockerd", "--data-root", str(self.dir / "data"), "--exec-root", str(self.run_dir / "x")),
                *("--pidfile", str(self.dir / "docker.pid"), "-H", self.host),
                *("--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false"),
                # Its networks from a range of its own: it cannot see the main engine's, and a bridge
                # on 172.17.0.0/16 (its default first pick) would shadow the main engine's docker0.
                *("--default-address-pool", "base=10.199.0.0/16,size=24"),
            ],
            self.dir / "dockerd.log",
        )
        wait_until(self._answers, 60, interval=0.2, what="the private dockerd")

    def _answers(self) -> bool:
        return self.docker("version", "--format", "{{.Server.Version}}", check=False).returncode == 0

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM and wait: dockerd stops its containers (10 s each at most) and its containerd."""
        if self.proc is not None:
            self.proc.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.popen.wait(timeout)
            self.proc.stop()
            self.proc = None

    def restart(self) -> float:
        """Stop and start again; the seconds it was down."""
        began = time.monotonic()
        self.stop()
        self.start()
        self.restarts += 1
        return time.monotonic() - began

    def docker(self, *args: str, check: bool = True, stdin: Any = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "-H", self.host, *args], check=check, capture_output=True, text=True, timeout=120, stdin=stdin
        )

    def load(self, image: str = BASE_IMAGE) -> None:
        """``docker save`` of the main engine's ``image`` into this one (built locally when missing)."""
        from .procs import REPO

        if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode:
            subprocess.run([str(REPO / "scripts/build-test-images.sh")], check=True, timeout=900)
        with subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as save:
            self.docker("load", "-q", stdin=save.stdout)
            if save.wait(120):
                raise AssertionError(f"docker save {image} failed")

    def client(self) -> Any:
        """A Docker SDK client of this engine."""
        import docker

        return docker.DockerClient(base_url=self.host, timeout=30)

    def close(self) -> None:
        """Remove every container of this engine, stop it, and drop its state."""
        if self.proc is not None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False)
            # dockerd leaves a user-defined network's bridge on the host when it stops.
            self.docker("network", "prune", "-f", check=False)
            self.stop()
        # dockerd bind-mounts its data root onto itself; an engine that did not shut down cleanly leaves it.
        subprocess.run(["umount", "-l", str(self.dir / "data")], capture_output=True, check=False)
        shutil.rmtree(self.dir / "data", ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)


#: What the soak's containers register as (their service in the soak's Consul; the watcher does not route it).
DOCKED_SERVICE = "docked"


class DockedApps:
    """The soak's Docker side: a :class:`PrivateDockerd`, containers labelled for ``disco registrator``,
    and the registrator registering them with the soak's client agent.  Started on first use."""

    def __init__(self, workdir: Path, agent_url: str) -> None:
        self.workdir = workdir
        self.agent_url = agent_url
        self.engine: PrivateDockerd | None = None
        self.registrator: Proc | None = None
        self._made = 0

    def start(self) -> None:
        if self.engine is not None:
            return
        self.engine = PrivateDockerd(self.workdir)
        self.engine.start()
        self.engine.load(BASE_IMAGE)
        self.engine.docker("network", "create", "apps")
        self.registrator = Proc(
            [
                *(*DISCO, "registrator", "--consul-addr", self.agent_url, "--network", "apps"),
                *("--resync", "5s", "--host", "soak"),
            ],
            self.workdir / "registrator.log",
            env={"DOCKER_HOST": self.engine.host},
        )
        for _ in range(2):
            self.run_container(always=True)

    def run_container(self, always: bool) -> str:
        assert self.engine is not None
        self._made += 1
        labels = {"disco.service": DOCKED_SERVICE, "disco.port": "8080", "disco.check": "none"}
        args = [f"--label={k}={v}" for k, v in labels.items()]
        policy = ["--restart=always"] if always else []
        made = self.engine.docker(
            *("run", "-d", "--network", "apps", "--name", f"app{self._made}", *policy, *args),
            *(BASE_IMAGE, "sleep", "infinity"),
        )
        return made.stdout.strip()[:12]

    def running(self) -> list[str]:
        assert self.engine is not None
        listed = self.engine.docker("ps", "-q", "--no-trunc", "--filter", f"label=disco.service={DOCKED_SERVICE}")
        return sorted(line[:12] for line in listed.stdout.split())

    def remove(self, short_id: str) -> None:
        assert self.engine is not None
        self.engine.docker("rm", "-f", short_id, check=False)

    def registered(self) -> list[str]:
        """The containers the agent holds a registration of (service IDs ``disco-reg:HOST:CONTAINER:PORT``)."""
        import requests

        services = requests.get(f"{self.agent_url}/v1/agent/services", timeout=5).json()
        return sorted(sid.split(":")[-2] for sid in services if sid.startswith("disco-reg:soak:"))

    def close(self) -> None:
        if self.registrator is not None:
            self.registrator.stop()
        if self.engine is not None:
            self.engine.close()
