"""The ``disco`` command: a thin Typer layer over the library, one module per command.

Each command turns flags into settings and calls the library; errors reach
:func:`discovery.cli.common.fail` and nowhere else.
"""

from __future__ import annotations

from . import demo, explain, plan, register, registrator, status, watch  # noqa: F401  (each registers its command on the app)
from .app import app


def main() -> None:
    app(prog_name="disco")


__all__ = ["app", "main"]
