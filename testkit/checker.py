"""The soak's invariant: once the dust settles, Consul's passing instances, the file and what
HAProxy runs agree.  Checked two ways, both must hold:

- the comparison ``disco status`` makes (:func:`status_agrees`, the one place that calls it);
- an independent reading: Consul's HTTP API on a server, the file parsed with a regex, and
  ``show servers state`` parsed by its header (:func:`independent_views`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

__all__ = ["Agreement", "Views", "independent_views", "status_agrees", "wait_for_agreement"]

#: backend -> server name -> (address:port, weight)
Servers = dict[str, dict[str, tuple[str, int]]]


def status_agrees(
    consul_url: str, services: Sequence[str], output: Path, admin: Path, template: Path, values: Mapping[str, str]
) -> tuple[bool, str]:
    """What ``disco status`` says (the one comparison, with the watcher's template and values):
    (in step, its rows as text).  The only call of that comparison here."""
    from discovery.consul.client import ConsulClient
    from discovery.haproxy.runtime import RuntimeAPI
    from discovery.observe.status import IN_STEP, status
    from discovery.settings import consul_settings

    report = status(
        ConsulClient(consul_settings(consul_url)),
        services,
        output,
        template=template,
        values=values,
        runtime=RuntimeAPI(admin),
    )
    rows = [
        f"  {b.backend}/{r.name}: consul={r.consul} file={r.file} haproxy={r.haproxy} {r.state or ''}"
        f"{' DRIFT ' + r.drift if r.drift else ''}{' PENDING ' + r.pending if r.pending else ''}"
        for b in report.backends
        for r in b.servers
    ]
    errors = [f"  {b.backend}: {b.haproxy_error}" for b in report.backends if b.haproxy_error]
    errors += [f"  config: {report.config_pending}"] if report.config_pending else []
    return report.exit_code == IN_STEP and not errors, "\n".join(rows + errors)


@dataclass(frozen=True)
class Views:
    consul: Servers
    file: Servers
    haproxy: Servers  # servers HAProxy runs ready (draining ones are left out: they go once done)
    haproxy_not_ready: dict[str, dict[str, str]]  # backend -> name -> state, for servers not ready

    def differences(self) -> list[str]:
        out = []
        for backend in sorted(set(self.consul) | set(self.file) | set(self.haproxy)):
            c, f, h = self.consul.get(backend, {}), self.file.get(backend, {}), self.haproxy.get(backend, {})
            if c != f:
                out.append(f"{backend}: Consul {sorted(c.items())} != file {sorted(f.items())}")
            if f != h:
                out.append(f"{backend}: file {sorted(f.items())} != HAProxy {sorted(h.items())}")
            for name, state in self.haproxy_not_ready.get(backend, {}).items():
                # A removed server drains, then is deleted: once the dust settled, none is left.
                where = "while the file lists it" if name in f else "and the file does not list it"
                out.append(f"{backend}/{name}: {state} in HAProxy {where}")
        return out

    def show(self) -> str:
        views = (("consul", self.consul), ("file", self.file), ("haproxy", self.haproxy))
        lines = [f"  {label}: {dict(sorted(view.items()))}" for label, view in views]
        return "\n".join([*lines, f"  haproxy, not ready: {self.haproxy_not_ready}"])


def consul_passing(url: str, services: Sequence[str]) -> Servers:
    """``/v1/health/service/S?passing`` on a server (default consistency: through the leader)."""
    out: Servers = {}
    for service in services:
        answer = requests.get(f"{url}/v1/health/service/{service}", params={"passing": "1"}, timeout=5)
        answer.raise_for_status()
        out[service] = {
            e["Service"]["ID"]: (
                f"{e['Service']['Address'] or e['Node']['Address']}:{e['Service']['Port']}",
                int((e["Service"].get("Meta") or {}).get("disco-weight", "1")),
            )
            for e in answer.json()
        }
    return out


_SERVER = re.compile(r"^\s*server\s+(\S+)\s+(\S+:\d+)\b(.*)$")
_WEIGHT = re.compile(r"\bweight\s+(\d+)")


def file_servers(path: Path, services: Sequence[str]) -> Servers:
    out: Servers = {s: {} for s in services}
    backend = None
    for line in path.read_text().splitlines():
        words = line.split()
        if words and not line[0].isspace():
            backend = words[1] if words[0] == "backend" and len(words) > 1 else None
        elif backend in out and (m := _SERVER.match(line)):
            weight = _WEIGHT.search(m.group(3))
            out[backend][m.group(1)] = (m.group(2), int(weight.group(1)) if weight else 1)
    return out


def haproxy_servers(admin: Path, services: Sequence[str]) -> tuple[Servers, dict[str, dict[str, str]]]:
    from discovery.haproxy.master import socket_command

    lines = socket_command(admin, "show servers state").splitlines()
    header = next((ln[2:].split() for ln in lines if ln.startswith("# be_id")), None)
    if header is None:
        raise AssertionError(f"no header in 'show servers state': {lines[:3]}")
    col = {name: i for i, name in enumerate(header)}
    ready: Servers = {s: {} for s in services}
    other: dict[str, dict[str, str]] = {}
    for line in lines:
        words = line.split()
        if line.startswith("#") or len(words) < len(header) or words[col["be_name"]] not in ready:
            continue
        backend, name = words[col["be_name"]], words[col["srv_name"]]
        admin_state = int(words[col["srv_admin_state"]])
        if admin_state & 0x3F:  # maintenance or drain
            other.setdefault(backend, {})[name] = f"admin state {admin_state:#x}"
            continue
        ready[backend][name] = (
            f"{words[col['srv_addr']]}:{words[col['srv_port']]}",
            int(words[col["srv_uweight"]]),
        )
    return ready, other


def independent_views(consul_url: str, services: Sequence[str], output: Path, admin: Path) -> Views:
    consul = consul_passing(consul_url, services)
    ready, other = haproxy_servers(admin, services)
    return Views(consul, file_servers(output, services), ready, other)


@dataclass(frozen=True)
class Agreement:
    ok: bool
    seconds: float
    report: str  # what each view said at the last look, when not ok


def wait_for_agreement(
    consul_url: Callable[[], str],
    watcher_consul: str,
    services: Sequence[str],
    output: Path,
    admin: Path,
    template: Path,
    values: Mapping[str, str],
    deadline: float,
    since: float,
    each_turn: Callable[[], None] = lambda: None,
) -> Agreement:
    """Poll until both checks agree (seconds counted from ``since``), or ``deadline`` seconds pass;
    ``each_turn`` runs before every look (the runner restarts a watcher that exited meanwhile)."""
    end = since + deadline
    report = "never looked"
    while True:
        each_turn()
        try:
            views = independent_views(consul_url(), services, output, admin)
            differences = views.differences()
            ok, rows = status_agrees(watcher_consul, services, output, admin, template, values)
            if not differences and ok:
                return Agreement(True, time.monotonic() - since, "")
            report = (
                "independent reading:\n"
                + (("\n".join(f"  {d}" for d in differences) + "\n") if differences else "  agree\n")
                + views.show()
                + f"\ndisco status: {'in step' if ok else 'NOT in step'}\n{rows}"
            )
        except Exception as exc:  # Consul or HAProxy not answering yet is part of settling
            report = f"could not read the views: {type(exc).__name__}: {exc}"
        if time.monotonic() >= end:
            return Agreement(False, time.monotonic() - since, report)
        time.sleep(0.25)
