"""disco as users get it: the wheel and sdist built from this checkout, the wheel installed with the
README's install line (`pipx install disco-haproxy`, here from the built wheel) into a fresh
environment outside the repository, and the installed `disco` run against a real Consul with the
template that ships inside the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery import DISTRIBUTION, __version__
from testkit.consul import ConsulAgent

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(wheel, sdist), built outside the checkout with the `build` frontend."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    yield wheels[0], sdists[0]


@pytest.fixture(scope="module")
def installed(built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `disco` command pipx installed from the wheel, in a home of its own (no checkout on its path)."""
    home = tmp_path_factory.mktemp("pipx")
    env = {**os.environ, "PIPX_HOME": str(home / "pipx"), "PIPX_BIN_DIR": str(home / "bin")}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        [sys.executable, "-m", "pipx", "install", str(built[0])],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=home,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    disco = home / "bin" / "disco"
    assert disco.exists(), result.stdout
    return disco


def run(disco: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CONSUL_HTTP_ADDR")}
    return subprocess.run([str(disco), *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


def test_the_wheel_carries_the_command_and_the_template(built: tuple[Path, Path]) -> None:
    wheel, sdist = built
    assert wheel.name.startswith(f"{DISTRIBUTION.replace('-', '_')}-{__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert "discovery/templates/haproxy.cfg.j2" in names
    dashboard = {f"discovery/observe/static/{n}" for n in ("index.html", "dashboard.css", "dashboard.js")}
    assert dashboard <= set(names)  # the dashboard's page is served from the installed package
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "disco = discovery.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert {"pyproject.toml", "README.md", "CHANGELOG.md", "discovery/templates/haproxy.cfg.j2", *dashboard} <= members


def test_installed_disco_runs_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    version = run(installed, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"disco {__version__} ({DISTRIBUTION})"
    help_ = run(installed, "--help", cwd=tmp_path)
    assert help_.returncode == 0
    for command in ("watch", "register", "registrator", "plan", "status", "explain", "demo"):
        assert command in help_.stdout
    # The installed command imports its own copy of disco, not this checkout's.
    where = subprocess.run(
        [str(installed.resolve().parent / "python"), "-c", "import discovery; print(discovery.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert where.returncode == 0 and not where.stdout.startswith(str(REPO)), where.stdout


def test_installed_disco_renders_from_a_real_consul(installed: Path, consul: ConsulAgent, tmp_path: Path) -> None:
    consul.put(
        "/v1/agent/service/register",
        {"Name": "web", "ID": "web-1", "Address": "127.0.0.1", "Port": 9101},
    )
    output = tmp_path / "haproxy.cfg"
    result = run(
        installed,
        "watch",
        "--once",
        "--dry-run",
        "--service",
        "web",
        "--output",
        str(output),
        "--consul-addr",
        consul.url,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "backend web" in result.stdout and "127.0.0.1:9101" in result.stdout
    assert not output.exists()  # a dry run touches nothing
