"""Changes in Consul a few times a second, from a seeded random stream: registrations,
deregistrations, health flips, weight and tag changes.  Paused while the checker looks.

The churn keeps what it registered (the desired registrations), so after the client agent
lost its data it registers them again, as ``disco register`` processes would.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .soak import SERVICES, ClientAgent

__all__ = ["Churn"]

IDS = {"web": 6, "api": 6, "shop": 4, "steady": 2}


@dataclass
class Instance:
    service: str
    id: str
    webapp: int
    weight: int = 10
    canary: bool = False
    alt_route: bool = False

    def payload(self, port: int) -> dict[str, Any]:
        tags = [SERVICES[self.service]]
        if self.alt_route:
            tags.append(f"urlprefix-/{self.service}-alt")
        if self.canary:
            tags.append("canary")
        return {
            "ID": self.id,
            "Name": self.service,
            "Address": "127.0.0.1",
            "Port": port,
            "Tags": tags,
            "Meta": {"disco-weight": str(self.weight), "disco-maxconn": "200", "version": "v1"},
            "Check": {"HTTP": f"http://127.0.0.1:{port}/health", "Interval": "1s", "Timeout": "1s"},
        }


@dataclass
class Churn:
    agent: ClientAgent
    webapps: list[tuple[int, Path]]
    rng: random.Random
    rate: float = 3.0  # changes a second
    registered: dict[str, Instance] = field(default_factory=dict)
    changes: int = 0
    errors: int = 0
    go: threading.Event = field(default_factory=threading.Event)
    stopped: threading.Event = field(default_factory=threading.Event)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def seed(self) -> None:
        """Two instances of every service, then the stream may start."""
        for service, count in IDS.items():
            for n in range(min(2, count)):
                self._register(Instance(service, f"{service}-{n}", self._webapp_for(service, n)))

    def _webapp_for(self, service: str, n: int) -> int:
        if service == "steady":
            return n  # webapps 0 and 1: never made sick
        return 2 + (list(IDS).index(service) + n) % (len(self.webapps) - 2)

    def _register(self, inst: Instance) -> None:
        self.agent.put("/v1/agent/service/register", inst.payload(self.webapps[inst.webapp][0]))
        self.registered[inst.id] = inst

    def resync(self) -> None:
        """Register everything again (the agent lost its data)."""
        with self.lock:
            for inst in list(self.registered.values()):
                self._register(inst)

    def pause(self) -> None:
        """Stop changing anything; returns once a change in flight is done."""
        self.go.clear()
        with self.lock:
            pass

    def resume(self) -> None:
        self.go.set()

    def stop(self) -> None:
        self.stopped.set()
        self.go.set()

    def run(self, limit: float) -> None:
        """Until stopped, and at most ``limit`` seconds."""
        end = time.monotonic() + limit
        while not self.stopped.is_set() and time.monotonic() < end:
            self.go.wait(1.0)
            if self.stopped.is_set() or not self.go.is_set():
                continue
            with self.lock:
                if self.go.is_set():
                    try:
                        self.step()
                        self.changes += 1
                    except Exception:  # the agent may be restarting: that is one of the faults
                        self.errors += 1
            self.stopped.wait(self.rng.expovariate(self.rate))

    def step(self) -> None:
        rng = self.rng
        kind = rng.choices(["add", "remove", "flip", "weight", "tag"], [3, 3, 2, 2, 1])[0]
        service = rng.choice([s for s in IDS if s != "steady"] if kind in ("add", "remove", "tag") else list(IDS))
        mine = [i for i in self.registered.values() if i.service == service]
        if kind == "add":
            free = [n for n in range(IDS[service]) if f"{service}-{n}" not in self.registered]
            if free:
                n = rng.choice(free)
                self._register(Instance(service, f"{service}-{n}", self._webapp_for(service, n), rng.randint(1, 100)))
                return
            kind = "remove"
        if kind == "remove" and len(mine) > 1:
            gone = rng.choice(mine)
            self.agent.put(f"/v1/agent/service/deregister/{gone.id}")
            del self.registered[gone.id]
        elif kind == "flip":
            _, fail = self.webapps[rng.randrange(2, len(self.webapps))]
            if fail.exists():
                fail.unlink()
            else:
                fail.touch()
        elif kind == "weight" and mine:
            inst = rng.choice(mine)
            inst.weight = rng.randint(1, 100)
            self._register(inst)
        elif mine:
            inst = rng.choice(mine)
            if rng.random() < 0.5:
                inst.canary = not inst.canary
            else:
                inst.alt_route = not inst.alt_route
            self._register(inst)

    def heal_all(self) -> None:
        """Every webapp healthy again."""
        for _, fail in self.webapps:
            fail.unlink(missing_ok=True)
