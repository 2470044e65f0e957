"""disco: Consul-backed service discovery for HAProxy.

The pipeline, one module per step, data flowing one way::

    watch (Consul blocking queries) -> desired (checked, frozen state) -> render (Jinja2)
        -> validate (haproxy -c) -> apply (atomic swap, reload)

``Watcher`` runs it; ``Registrar`` keeps an instance registered.  The CLI
(``disco``) is a thin layer over these.
"""

from __future__ import annotations

from .apply import Applier, LiveConfig, Outcome
from .catalog import Catalog, ConsulClient
from .desired import convert
from .errors import (AccessDenied, CatalogError, CatalogUnavailable, ConfigError, DiscoveryError,
                     HAProxyUnavailable, LiveUpdateFailed, RegistrationError, ReloadError, TemplateError,
                     ValidationError)
from .gate import GatePolicy
from .haproxy import CommandReloader, MasterSocket
from .model import DesiredState, Instance, Service
from .register import Registrar, Registration, build_registration
from .render import DEFAULT_TEMPLATE, Renderer
from .runner import Applied, WatchConfig, Watcher
from .settings import ConsulSettings, consul_settings, parse_duration
from .validate import Validator

__version__ = "0.1.0"

__all__ = [
    "AccessDenied", "Applied", "Applier", "Catalog", "CatalogError", "CatalogUnavailable", "CommandReloader",
    "ConfigError", "ConsulClient", "ConsulSettings", "DEFAULT_TEMPLATE", "DesiredState", "DiscoveryError",
    "GatePolicy", "HAProxyUnavailable", "Instance", "LiveUpdateFailed", "LiveConfig", "MasterSocket", "Outcome", "Registrar", "Registration",
    "RegistrationError", "ReloadError", "Renderer", "Service", "TemplateError", "ValidationError", "Validator",
    "WatchConfig", "Watcher", "build_registration", "consul_settings", "convert", "parse_duration",
]
