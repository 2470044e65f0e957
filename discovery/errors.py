"""Every failure a user can act on has its own exception type.

The tree::

    DiscoveryError                 anything disco reports to a user
    ├── ConfigError                bad input: a flag, environment value, file named by the user (exit 2)
    ├── CatalogError               Consul could not answer
    │   ├── CatalogUnavailable     unreachable, timed out, or 5xx: retried with backoff
    │   └── AccessDenied           the ACL token was refused (403): not retried
    ├── ConnectionLimit            the agent keeps resetting our connections (its per-client limit)
    ├── TemplateError              the Jinja2 template failed to load or render
    ├── ValidationError            the rendered config was rejected by `haproxy -c`
    ├── LiveUpdateFailed           the runtime API refused a change: disco reloads instead
    ├── ReloadError                HAProxy did not take the new config
    │   └── HAProxyUnavailable     no HAProxy answers on the master socket yet
    ├── OutputError                the output file (or its directory) could not be written
    ├── WorkerFailed               a thread the watcher owns died: the process exits 1 for its supervisor
    ├── RegistrationError          `disco register` could not register the instance
    └── DockerUnavailable          the Docker engine did not answer (`disco registrator` retries)

Each command of the CLI catches ``DiscoveryError`` once, at its edge, and prints
one line: exit status 2 for ``ConfigError`` (bad input), 1 for everything else.
"""

from __future__ import annotations


class DiscoveryError(Exception):
    """Base of every error disco reports to a user."""


class ConfigError(DiscoveryError):
    """A flag, environment variable or file given by the user is unusable."""


class CatalogError(DiscoveryError):
    """Consul could not answer a query."""


class CatalogUnavailable(CatalogError):
    """Consul is unreachable, timed out or failed (5xx); worth retrying."""


class AccessDenied(CatalogError):
    """Consul refused the ACL token (403); retrying cannot help."""


class TemplateError(DiscoveryError):
    """The template could not be loaded or rendered."""


class ValidationError(DiscoveryError):
    """HAProxy rejected the rendered configuration; ``details`` holds its [ALERT] lines."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class ReloadError(DiscoveryError):
    """HAProxy did not take the new configuration (the old one keeps serving)."""


class RegistrationError(DiscoveryError):
    """The instance could not be registered with the local Consul agent."""


class HAProxyUnavailable(ReloadError):
    """No HAProxy answers on the master socket: nothing to reload yet (the file is still written)."""


class LiveUpdateFailed(DiscoveryError):
    """The runtime API did not take a change; disco falls back to a validated reload."""


class OutputError(DiscoveryError):
    """The output file, its temporary copy or its last good copy could not be written or read."""


class ConnectionLimit(DiscoveryError):
    """The agent resets connection after connection: more long polls than its per-client limit allows."""


class WorkerFailed(DiscoveryError):
    """A thread the watcher owns ended unexpectedly; the watcher stops so its supervisor restarts it."""


class DockerUnavailable(DiscoveryError):
    """The Docker engine is unreachable or failed; ``disco registrator`` retries with backoff."""
