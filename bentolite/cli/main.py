"""Entry point of the ``bentolite`` command.

Each command lives in its own module of this package and exports ``commands``, a list of click
commands; :data:`COMMAND_MODULES` names those modules. Errors are mapped to exit codes here, once:
a :class:`~bentolite.exceptions.BentoliteError` prints one line on stderr and exits with its
``exit_code`` (2 for usage and validation errors, 1 for failures); ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

import bentolite
from bentolite.exceptions import BentoliteError

#: modules of this package that define commands
COMMAND_MODULES = ("bundles", "build", "serve", "containerize", "clipper")


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except BentoliteError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:  # the CLI's last resort: one line instead of a traceback
            if ctx.obj and ctx.obj.get("debug"):
                raise
            _fail(f"unexpected {type(exc).__name__}: {exc} (run with --debug for details)", 1)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(bentolite.__version__, prog_name="bentolite")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Bundle, serve and containerize prediction services."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _register() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"bentolite.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bentolite.cli.{name}":
                continue  # that command group is not part of this installation
            raise
        for command in module.commands:
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="bentolite")
