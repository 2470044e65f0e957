"""The Typer application; each command lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Consul-backed service discovery for HAProxy.\n\n"
    "Webapps announce themselves with `disco register`; `disco watch` turns Consul's live view of "
    "the healthy instances into HAProxy's backends and reloads HAProxy; `disco demo` runs it all "
    "on this machine.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    add_completion=False,
)
