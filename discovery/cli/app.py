"""The Typer application; each command lives in its own module and registers itself with
:func:`command`.

Two things Typer does not do the way a user reads ``--help``:

- Typer (0.26 and later) shows a boolean flag with a value type (``--once <bool>``), as if it took
  a value. :class:`FlagsAsFlags` blanks the type column of flags, ``--help`` included.
- ``disco --version`` prints the distribution's name and version (one place: ``discovery.__version__``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from .. import DISTRIBUTION, __version__


def _blank_flag_types(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    return params


class FlagsAsFlags(TyperCommand):
    """A command whose boolean flags show no value type in ``--help``."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _blank_flag_types(super().get_params(ctx))


class FlagsAsFlagsGroup(TyperGroup):
    """The ``disco`` group itself, with the same rule for its own flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _blank_flag_types(super().get_params(ctx))


app = typer.Typer(
    cls=FlagsAsFlagsGroup,
    help="Consul-backed service discovery for HAProxy.\n\n"
    "Webapps announce themselves with `disco register`; `disco watch` turns Consul's live view of "
    "the healthy instances into HAProxy's backends and reloads HAProxy; `disco demo` runs it all "
    "on this machine.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)


def command(**kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``app.command`` with flags shown as flags."""
    return app.command(cls=FlagsAsFlags, **kwargs)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"disco {__version__} ({DISTRIBUTION})")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print disco's version and exit."),
    ] = False,
) -> None:
    """The group's own options (the help text is the app's)."""
