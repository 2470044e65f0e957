"""disco: Consul-backed service discovery for HAProxy.

The package is grouped by pipeline stage, data flowing one way::

    consul/        Consul's HTTP API, blocking-query watches (per service or catalog-wide)
    state/         desired state: frozen dataclasses, catalog checks, the sanity gate's rules
    haproxy/       render (Jinja2), validate (haproxy -c), plan (config diff), master CLI,
                   runtime API, the output file
    pipeline/      the watcher loop, decide (pure), execute, live updates, quiescence,
                   events, the threads' lifecycle
    registration/  registering instances: one (disco register), or containers from their labels
                   (disco registrator)
    cli/           the Typer commands, one module each

``Watcher`` runs the pipeline; ``Registrar`` keeps an instance registered; ``Registrator``
registers Docker containers.
"""

from __future__ import annotations

from .consul.client import Catalog, ConsulClient
from .errors import (
    AccessDenied,
    CatalogError,
    CatalogUnavailable,
    ConfigError,
    DiscoveryError,
    DockerUnavailable,
    HAProxyUnavailable,
    LiveUpdateFailed,
    OutputError,
    RegistrationError,
    ReloadError,
    TemplateError,
    ValidationError,
    WorkerFailed,
)
from .haproxy.files import LiveConfig
from .haproxy.master import CommandReloader, MasterSocket
from .haproxy.render import DEFAULT_TEMPLATE, Renderer
from .haproxy.validate import Validator
from .pipeline.decide import Action, Decision, decide
from .pipeline.events import EventBus
from .pipeline.execute import Executor, Outcome
from .pipeline.watch_config import WatchConfig
from .pipeline.watcher import Watcher
from .registration.register import Registrar, Registration, build_registration
from .registration.registrator import Registrator
from .settings import ConsulSettings, consul_settings, parse_duration
from .state.convert import convert
from .state.gate import GatePolicy
from .state.model import DesiredState, Instance, Service

#: The distribution's name on the package index (``pip install disco-haproxy``); the command is ``disco``
#: and the import package ``discovery``.
DISTRIBUTION = "disco-haproxy"
#: The one place the version is written (pyproject.toml reads it from here).
__version__ = "0.2.0"

__all__ = [
    "DEFAULT_TEMPLATE",
    "AccessDenied",
    "Action",
    "Catalog",
    "CatalogError",
    "CatalogUnavailable",
    "CommandReloader",
    "ConfigError",
    "ConsulClient",
    "ConsulSettings",
    "Decision",
    "DesiredState",
    "DiscoveryError",
    "DockerUnavailable",
    "EventBus",
    "Executor",
    "GatePolicy",
    "HAProxyUnavailable",
    "Instance",
    "LiveConfig",
    "LiveUpdateFailed",
    "MasterSocket",
    "Outcome",
    "OutputError",
    "Registrar",
    "Registration",
    "RegistrationError",
    "Registrator",
    "ReloadError",
    "Renderer",
    "Service",
    "TemplateError",
    "ValidationError",
    "Validator",
    "WatchConfig",
    "Watcher",
    "WorkerFailed",
    "build_registration",
    "consul_settings",
    "convert",
    "decide",
    "parse_duration",
]
