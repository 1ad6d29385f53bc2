"""``bentolite containerize``: build a bundle into an HTTP or a Clipper image."""

from __future__ import annotations

from pathlib import Path

import click

from bentolite.exceptions import BuildError, InvalidArgument


def parse_build_args(values: tuple[str, ...], option: str = "--build-arg") -> dict[str, str]:
    """``("K=V", ...)`` as a mapping; ``option`` names the option in the error."""
    args = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise InvalidArgument(f"{option} {value!r}: expected KEY=VALUE")
        args[key.strip()] = val
    return args


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
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="K=V",
    help="An image label besides the bundle's own (repeatable).",
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
    labels: tuple[str, ...],
    no_cache: bool,
    push: bool,
    output_context: Path | None,
) -> None:
    """Build the bundle TAG (Name:version, or a bundle directory) into a container image.

    Prints the image name on stdout. Needs a Docker engine (DOCKER_HOST) unless
    --output-context is given.
    """
    from bentolite import image_build as build

    args = parse_build_args(build_args)
    image_labels = parse_build_args(labels, "--label")
    if output_context is not None:
        if push:
            raise InvalidArgument("--output-context builds nothing to push; drop --push")
        import shlex

        from bentolite.bundle_meta import BundleMeta
        from bentolite.dockerfile import target_api

        path = build.write_build_context(bundle, output_context, target, api, base_image, image_labels)
        meta = BundleMeta.read(path)
        served = target_api(meta, target, api)
        name = build.image_name(meta, target, served.name if served else None, image)
        command = ["docker", "build", "-t", name, *(["--platform", platform] if platform else [])]
        command += ["--no-cache"] * no_cache + [f"--build-arg={k}={v}" for k, v in args.items()]
        click.echo(f"Wrote the build context to {path}; build it with:", err=True)
        click.echo(f"  {shlex.join([*command, str(path)])}", err=True)
        click.echo(str(path))
        return
    from bentolite.build_progress import BuildDisplay

    display = BuildDisplay()
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
                labels=image_labels,
                on_event=display,
            )
    except BuildError as exc:
        display.show_failure(exc)
        raise
    click.echo(name)


commands = [containerize]
