"""``bentolite containerize``: build a bundle into an HTTP or a Clipper image."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bentolite.exceptions import BuildError, InvalidArgument

if TYPE_CHECKING:
    from rich.text import Text

    from bentolite.image_build import BuildEvent

_TAIL_LINES = 12


def _parse_build_args(values: tuple[str, ...]) -> dict[str, str]:
    args = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--build-arg {value!r}: expected KEY=VALUE")
        args[key] = val
    return args


class _BuildDisplay:
    """Shows a build on stderr: on a terminal, each step as it starts and a live tail of its
    output; elsewhere (CI logs, pipes), every line as it arrives."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self.live = None

    def __enter__(self) -> _BuildDisplay:
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._render(), console=self.console, transient=True, refresh_per_second=8)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
            self.live = None

    def _render(self) -> Text:
        from rich.text import Text

        return Text("\n".join(self.tail), style="dim", overflow="ellipsis", no_wrap=True)

    def __call__(self, event: BuildEvent) -> None:
        from rich.markup import escape
        from rich.text import Text

        if event.kind == "step":
            self.tail.clear()
            if self.live is not None:  # one line per step on a terminal
                line = " ".join(event.text.split())
                width = self.console.width - 1
                self.console.print(
                    Text(line if len(line) <= width else line[: width - 3] + "...", style="bold")
                )
            else:
                self.console.print(f"[bold]{escape(event.text)}[/]", soft_wrap=True)
        elif event.kind == "info":
            self.console.print(f"[green]{escape(event.text)}[/]")
        elif self.live is not None:
            self.tail.append(event.text)
        else:
            self.console.print(f"  {escape(event.text)}", style="dim", soft_wrap=True)
        if self.live is not None:
            self.live.update(self._render())

    def show_failure(self, exc: BuildError) -> None:
        from rich.panel import Panel
        from rich.text import Text

        if exc.detail:
            self.console.print(Panel(Text(exc.detail), title="output of the failed step", border_style="red"))


@click.command()
@click.argument("bundle", metavar="TAG")
@click.option("-t", "--tag", "image", metavar="IMAGE[:TAG]", help="Image name (default <name>:<version>).")
@click.option(
    "--target",
    type=click.Choice(["http", "clipper"]),
    default="http",
    show_default=True,
    help="An HTTP server image, or a Clipper model container serving one API.",
)
@click.option("--api", help="The API a Clipper image serves (default: the only Clipper API).")
@click.option("--base-image", help="Base image (default: @env/bentofile choice, else python:X.Y-slim).")
@click.option("--platform", help="Target platform, e.g. linux/amd64.")
@click.option(
    "--build-arg", "build_args", multiple=True, metavar="K=V", help="A build argument (repeatable)."
)
@click.option("--no-cache", is_flag=True, help="Build every layer again.")
@click.option("--push", is_flag=True, help="Push the image to the registry its name starts with.")
@click.option(
    "--output-context",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the complete build context to this directory and stop (needs no engine).",
)
def containerize(
    bundle: str,
    image: str | None,
    target: str,
    api: str | None,
    base_image: str | None,
    platform: str | None,
    build_args: tuple[str, ...],
    no_cache: bool,
    push: bool,
    output_context: Path | None,
) -> None:
    """Build the bundle TAG (Name:version, or a bundle directory) into a container image.

    Prints the image name on stdout. Needs a Docker engine (DOCKER_HOST) unless
    --output-context is given.
    """
    from bentolite import image_build as build

    args = _parse_build_args(build_args)
    if output_context is not None:
        if push:
            raise InvalidArgument("--output-context builds nothing to push; drop --push")
        import shlex

        from bentolite.bundle_meta import BundleMeta
        from bentolite.dockerfile import target_api

        path = build.write_build_context(bundle, output_context, target, api, base_image)
        meta = BundleMeta.read(path)
        served = target_api(meta, target, api)
        name = build.image_name(meta, target, served.name if served else None, image)
        command = ["docker", "build", "-t", name, *(["--platform", platform] if platform else [])]
        command += ["--no-cache"] * no_cache + [f"--build-arg={k}={v}" for k, v in args.items()]
        click.echo(f"Wrote the build context to {path}; build it with:", err=True)
        click.echo(f"  {shlex.join([*command, str(path)])}", err=True)
        click.echo(str(path))
        return
    display = _BuildDisplay()
    try:
        with display:
            name = build.containerize(
                bundle,
                target,
                image,
                api=api,
                base_image=base_image,
                platform=platform,
                build_args=args,
                no_cache=no_cache,
                push=push,
                on_event=display,
            )
    except BuildError as exc:
        display.show_failure(exc)
        raise
    click.echo(name)


commands = [containerize]
