"""``bentolite clipper-container``: run one API of a bundle as a Clipper model container."""

from __future__ import annotations

import sys

import click


@click.command("clipper-container")
@click.argument("bundle", required=False)
@click.option("--api", "api_name", help="API to serve (default: $BENTOLITE_API, else the only Clipper API).")
def clipper_container(bundle: str | None, api_name: str | None) -> None:
    """Serve BUNDLE's API to a Clipper query frontend over Clipper's RPC protocol.

    BUNDLE is a bundle directory or a store tag (default: $CLIPPER_MODEL_PATH, else /model).
    The frontend and the model identity come from CLIPPER_MODEL_NAME, CLIPPER_MODEL_VERSION,
    CLIPPER_IP, CLIPPER_PORT and CLIPPER_INPUT_TYPE, as Clipper's container managers set them;
    `python -m bentolite.clipper` is the same command.
    """
    from bentolite.clipper.container import main

    argv = [bundle] if bundle else []
    if api_name:
        argv += ["--api", api_name]
    sys.exit(main(argv))


commands = [clipper_container]
