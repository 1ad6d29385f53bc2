"""Entry point of the ``bentolite`` command (the commands live in their own modules)."""

from __future__ import annotations

import click

import bentolite


@click.group()
@click.version_option(bentolite.__version__, prog_name="bentolite")
def cli() -> None:
    """Bundle, serve and containerize prediction services."""


def main() -> None:
    cli()
