"""DesiredState + values -> config text, with Jinja2.  Pure: no I/O beyond loading the template.

The template sees plain data:

- ``services``: a list of ``{name, instances: [{id, name, node, address, port, tags, meta, health}]}``
  in the order the services were given;
- ``service``: the same, keyed by service name; each also has ``routes``, ``settings``
  (``check``, ``balance``, ``sticky``, ``maxconn``, ``https_only``), ``tcp`` and
  ``cookie_key``, and each instance ``weight`` and ``backup``;
- ``routing``: every service's routes in precedence order (:mod:`discovery.state.routing`):
  ``http`` rules, ``tcp`` listeners, ``default_backend``;
- every ``--set K=V`` value at the top level, and all of them as ``values``;
- ``env``: the environment of the watcher.

StrictUndefined makes a misspelt name an error instead of an empty string.  The
``default`` filter still works for optional values, e.g. ``{{ frontend_port | default(80) }}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from ..state import checks as names
from ..errors import TemplateError
from ..state.model import DesiredState, Service
from ..state.routing import table

DEFAULT_TEMPLATE = Path(__file__).parent.parent / "templates" / "haproxy.cfg.j2"
RESERVED = frozenset({"services", "service", "values", "env", "routing"})


def server_address(instance: Mapping[str, Any]) -> str:
    """``address:port`` for a server line, IPv6 in brackets."""
    return f"{names.format_address(instance['address'])}:{instance['port']}"


class Renderer:
    """A loaded template; ``render`` is a pure function of its arguments."""

    def __init__(self, template_path: Path) -> None:
        self.path = template_path
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(template_path.parent)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
        )
        env.filters["server_address"] = server_address
        # Unchanged services are the same objects from one pass to the next: keep their context.
        self._contexts: dict[str, tuple[Service, dict[str, Any]]] = {}
        try:
            self._template = env.get_template(template_path.name)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"template {template_path} not found") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template {exc.filename or template_path}:{exc.lineno}: {exc.message}") from exc
        except OSError as exc:
            raise TemplateError(f"cannot read template {template_path}: {exc.strerror}") from exc

    def _context(self, service: Service) -> dict[str, Any]:
        cached = self._contexts.get(service.name)
        if cached is None or cached[0] is not service:
            cached = (service, service.as_context())
            self._contexts[service.name] = cached
        return cached[1]

    def render(self, state: DesiredState, values: Mapping[str, str] | None = None,
               env: Mapping[str, str] | None = None) -> str:
        values = dict(values or {})
        clash = RESERVED.intersection(values)
        if clash:
            raise TemplateError(f"--set cannot name {', '.join(sorted(clash))}: reserved template names")
        services = [self._context(s) for s in state.services]
        context: dict[str, Any] = {**values, "values": values, "env": dict(env or {}),
                                   "services": services, "service": {s["name"]: s for s in services},
                                   "routing": table(state.services, values, state.discovered).as_context()}
        try:
            return self._template.render(context)
        except jinja2.TemplateError as exc:
            line = _template_line(exc)
            raise TemplateError(f"template {self.path}{line}: {exc}") from exc


def _template_line(exc: BaseException) -> str:
    """Find the template line in a render traceback, for an error a user can act on."""
    tb = exc.__traceback__
    lineno = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(".j2") or "template" in tb.tb_frame.f_code.co_name:
            lineno = tb.tb_lineno
        tb = tb.tb_next
    lineno = getattr(exc, "lineno", None) or lineno
    return f":{lineno}" if lineno else ""
