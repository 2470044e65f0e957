"""disco: Consul-backed service discovery for HAProxy.

The pipeline, one module per step, data flowing one way::

    watch (Consul blocking queries) -> desired (checked, frozen state) -> render (Jinja2)
        -> validate (haproxy -c) -> apply (atomic swap, reload)

``Watcher`` runs it; ``Registrar`` keeps an instance registered.  The CLI
(``disco``) is a thin layer over these.
"""

from __future__ import annotations

from .haproxy.files import LiveConfig
from .pipeline.execute import Applier, Outcome
from .consul.client import Catalog, ConsulClient
from .state.convert import convert
from .errors import (AccessDenied, CatalogError, CatalogUnavailable, ConfigError, DiscoveryError,
                     HAProxyUnavailable, LiveUpdateFailed, RegistrationError, ReloadError, TemplateError,
                     ValidationError)
from .state.gate import GatePolicy
from .haproxy.master import CommandReloader, MasterSocket
from .state.model import DesiredState, Instance, Service
from .registration.register import Registrar, Registration, build_registration
from .haproxy.render import DEFAULT_TEMPLATE, Renderer
from .pipeline.watcher import Applied, WatchConfig, Watcher
from .settings import ConsulSettings, consul_settings, parse_duration
from .haproxy.validate import Validator

__version__ = "0.1.0"

__all__ = [
    "AccessDenied", "Applied", "Applier", "Catalog", "CatalogError", "CatalogUnavailable", "CommandReloader",
    "ConfigError", "ConsulClient", "ConsulSettings", "DEFAULT_TEMPLATE", "DesiredState", "DiscoveryError",
    "GatePolicy", "HAProxyUnavailable", "Instance", "LiveUpdateFailed", "LiveConfig", "MasterSocket", "Outcome", "Registrar", "Registration",
    "RegistrationError", "ReloadError", "Renderer", "Service", "TemplateError", "ValidationError", "Validator",
    "WatchConfig", "Watcher", "build_registration", "consul_settings", "convert", "parse_duration",
]
