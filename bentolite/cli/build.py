"""``bentolite build``: build a bundle from a bentofile.yaml."""

from __future__ import annotations

from pathlib import Path

import click

from bentolite.bentofile import BENTOFILE
from bentolite.bundle_meta import BundleMeta
from bentolite.cli.output import TABLE_FORMATS, print_data
from bentolite.exceptions import InvalidArgument
from bentolite.store import BundleInfo


def parse_labels(values: tuple[str, ...]) -> dict[str, str]:
    """``("team=ml", "stage=dev")`` -> ``{"team": "ml", "stage": "dev"}``."""
    labels = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise InvalidArgument(f"--label {value!r}: expected KEY=VALUE")
        labels[key.strip()] = val
    return labels


class _Steps:
    """Shows the build's steps on stderr when it is a terminal: a spinner on the running step,
    a tick on each finished one. Elsewhere it stays quiet, so an error stays one line."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.status = None
        self.current: str | None = None

    def __enter__(self) -> _Steps:
        return self

    def __call__(self, step: str) -> None:
        if not self.console.is_terminal:
            return
        self._finish_current()
        self.current = step
        if self.status is None:
            self.status = self.console.status(f"{step}...")
            self.status.start()
        else:
            self.status.update(f"{step}...")

    def _finish_current(self) -> None:
        if self.current is not None:
            self.console.print(f"[green]✓[/] {self.current}")
            self.current = None

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self.status is not None:
            self.status.stop()
        if exc_type is None:
            self._finish_current()


@click.command("build")
@click.option(
    "-f",
    "--file",
    "bentofile",
    default=BENTOFILE,
    show_default=True,
    type=click.Path(path_type=Path),
    help="The bentofile to build (a folder means its bentofile.yaml); its folder is the build directory.",
)
@click.option(
    "--version",
    metavar="VERSION",
    help="Version of the new bundle (default: the bentofile's, else generated).",
)
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Add a label; repeatable.")
@click.option("-o", "--output", type=click.Choice(TABLE_FORMATS), default="table", show_default=True)
def build_command(bentofile: Path, version: str | None, labels: tuple[str, ...], output: str) -> None:
    """Build a bundle into the store from a bentofile.yaml.

    Prints the new tag and the bundle's path; -o json|yaml prints its record instead.
    """
    from bentolite.builder import build

    extra_labels = parse_labels(labels)
    if bentofile.is_dir():
        bentofile = bentofile / BENTOFILE
    with _Steps() as steps:
        path = build(bentofile, version=version, labels=extra_labels, progress=steps)
    info = BundleInfo(path, BundleMeta.read(path))
    if output == "table":
        click.echo(f"Built {info.tag}")
        click.echo(f"  {path}")
    else:
        print_data(info.to_dict(), output)


commands = [build_command]
