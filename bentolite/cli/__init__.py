"""The ``bentolite`` command line."""

from bentolite.cli.main import main

__all__ = ["main"]
