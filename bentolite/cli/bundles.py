"""Commands on the bundles in the store: list, get, delete, export, import, run, openapi."""

from __future__ import annotations

import asyncio
import inspect
import mimetypes
from pathlib import Path
from typing import Any

import click

from bentolite import store
from bentolite.bentofile import did_you_mean
from bentolite.bundle_meta import BundleMeta
from bentolite.cli.output import DATA_FORMATS, TABLE_FORMATS, print_bundles, print_data
from bentolite.exceptions import BadInput, BentoliteError, InferenceError, InvalidArgument


@click.command("list")
@click.argument("name", required=False)
@click.option("-o", "--output", type=click.Choice(TABLE_FORMATS), default="table", show_default=True)
def list_command(name: str | None, output: str) -> None:
    """List the bundles in the store (only those called NAME, if given), oldest first."""
    bundles = store.list_bundles(name)
    if output == "table" and not bundles:
        what = f"bundles named {name!r}" if name else "bundles"
        click.echo(f"No {what} in the store ({store.bundles_root()}).")
        return
    print_bundles(bundles, output)


@click.command("get")
@click.argument("tag")
@click.option("-o", "--output", type=click.Choice(DATA_FORMATS), default="yaml", show_default=True)
def get_command(tag: str, output: str) -> None:
    """Show everything recorded about a bundle (TAG is Name:version, or Name for the latest)."""
    info = store.get(tag)
    summary = info.to_dict()
    record = {key: summary[key] for key in ("tag", "name", "version", "created_at", "path", "size_bytes")}
    record.update((key, value) for key, value in info.meta.to_dict().items() if key not in record)
    print_data(record, output)


@click.command("delete")
@click.argument("tags", nargs=-1, required=True, metavar="TAG...")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_command(tags: tuple[str, ...], yes: bool) -> None:
    """Delete bundles from the store. Every TAG is checked before anything is deleted."""
    found = {}
    for tag in tags:
        info = store.get(tag)
        found[info.path] = info
    served = False
    for info in found.values():
        pids = store.servers_of(info.path)
        if pids:
            served = True
            listed_pids = ", ".join(str(pid) for pid in pids)
            click.echo(f"warning: {info.tag} is being served (process {listed_pids})", err=True)
    if not yes:
        listed = ", ".join(info.tag for info in found.values())
        question = f"Delete {listed} anyway?" if served else f"Delete {listed}?"
        click.confirm(question, abort=True, err=True)
    for info in found.values():
        store.delete(info.tag)
        click.echo(f"Deleted {info.tag}")


@click.command("export")
@click.argument("tag")
@click.argument("file", type=click.Path(path_type=Path))
def export_command(tag: str, file: Path) -> None:
    """Write a bundle to FILE: .bento or .tar.gz (gzipped tar), .tar, or .zip.

    FILE may be a folder: the archive is then <folder>/<Name>-<version>.bento.
    """
    from bentolite.archive import export_bundle

    info = store.get(tag)
    path = export_bundle(info.path, file)
    click.echo(f"Exported {info.tag} to {path}")


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a bundle with the same tag.")
def import_command(file: Path, force: bool) -> None:
    """Add a bundle archive (made by `bentolite export`) to the store."""
    from bentolite.archive import import_bundle

    info = import_bundle(file, force=force)
    click.echo(f"Imported {info.tag} to {info.path}")


@click.command("run")
@click.argument("tag")
@click.argument("api")
@click.option(
    "--input", "input_text", metavar="JSON", help="The input as JSON (a JSON string for text APIs)."
)
@click.option(
    "--input-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the input from a file, sent as its extension says (.json, .csv, .txt, .png...).",
)
def run_command(tag: str, api: str, input_text: str | None, input_file: Path | None) -> None:
    """Run one prediction of API with a bundle and print the result as the HTTP API returns it."""
    if (input_text is None) == (input_file is None):
        raise InvalidArgument("give exactly one of --input JSON and --input-file FILE")
    from bentolite.bundle import load_bundle

    path = store.resolve(tag)
    apis = [a.name for a in BundleMeta.read(path).apis]
    if api not in apis:
        raise InvalidArgument(
            f"{tag} has no API {api!r}; its APIs: {', '.join(apis) or 'none'}{did_you_mean(api, apis)}"
        )
    service = load_bundle(path)
    body, content_type = _request_body(service.get_api(api).adapter, input_text, input_file)
    response = predict(service, api, body, content_type)
    # a file's or an image's bytes are written as they are, without the newline text gets
    click.echo(response.body, nl=response.media_type.startswith(("application/json", "text/")))


@click.command("openapi")
@click.argument("tag")
@click.option("-o", "--output", type=click.Choice(("json", "yaml")), default="json", show_default=True)
def openapi_command(tag: str, output: str) -> None:
    """Print the OpenAPI document of a bundle's HTTP API."""
    try:
        from bentolite.server.openapi import openapi_spec
    except ModuleNotFoundError as exc:
        if exc.name not in ("bentolite.server", "bentolite.server.openapi"):
            raise
        raise BentoliteError("this installation of bentolite has no HTTP server (bentolite.server)") from exc
    from bentolite.bundle import load_bundle

    print_data(openapi_spec(load_bundle(store.resolve(tag), load_artifacts=False)), output)


# --- one prediction, the way the HTTP server makes it ----------------------------------------


def predict(service: Any, api_name: str, body: bytes, content_type: str) -> Any:
    """Parse ``body`` with the API's adapter, call the API (as a batch of one when it batches)
    and render the result: the same bytes an HTTP request with that body gets back."""
    from bentolite.adapters import HttpRequest

    spec = service.get_api(api_name)
    adapter = spec.adapter
    request = HttpRequest.from_content_type(body, content_type)
    payload = adapter.from_http(request)
    if spec.batch:
        batch, sizes = adapter.merge([payload])
        result = adapter.split(_call(service, api_name, batch), sizes)[0]
    else:
        result = _call(service, api_name, payload)
    return spec.output.to_http(result, request, payload)


def _call(service: Any, api_name: str, payload: Any) -> Any:
    try:
        result = service.call(api_name, payload)
        if inspect.isawaitable(result):
            result = asyncio.run(result)
    except BentoliteError:
        raise
    except Exception as exc:  # the user's function failed: report it as the server would
        raise InferenceError(f"API {api_name!r} raised {type(exc).__name__}: {exc}") from exc
    return result


def _accepts(adapter: Any, media_type: str) -> bool:
    return any(
        media_type == accepted or (accepted.endswith("/*") and media_type.startswith(accepted[:-1]))
        for accepted in adapter.accepts
    )


def _default_media_type(adapter: Any) -> str:
    first = adapter.accepts[0]
    if first == "text/*":
        return "text/plain; charset=utf-8"
    return "application/octet-stream" if first.endswith("/*") else first


def _request_body(adapter: Any, input_text: str | None, input_file: Path | None) -> tuple[bytes, str]:
    """The body and content type of the HTTP request ``--input``/``--input-file`` stand for."""
    if input_file is not None:
        guessed = mimetypes.guess_type(input_file.name)[0]
        content_type = guessed if guessed and _accepts(adapter, guessed) else _default_media_type(adapter)
        return input_file.read_bytes(), content_type
    assert input_text is not None
    body, value = _parse_input(input_text, allow_nan=bool(getattr(adapter, "allow_nan", False)))
    if _accepts(adapter, "application/json"):
        return body, "application/json"
    if not isinstance(value, str):
        raise InvalidArgument(
            f"{adapter.name} does not take JSON: give --input as a JSON string, e.g. --input "
            "'\"some text\"', or use --input-file"
        )
    return value.encode("utf-8"), _default_media_type(adapter)


def _parse_input(input_text: str, *, allow_nan: bool) -> tuple[bytes, Any]:
    """``--input`` as UTF-8 bytes and the JSON value they hold, parsed as strictly as the HTTP
    server parses a request body (:mod:`bentolite.adapters.strict_json`): ``NaN``/``Infinity``
    only where the API's adapter allows them."""
    from bentolite.adapters import strict_json

    try:
        # an argument that was not UTF-8 on the command line comes as surrogate escapes
        body = input_text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise InvalidArgument("--input is not valid Unicode text; give it as UTF-8 JSON") from None
    try:
        return body, strict_json.loads(body, allow_nan=allow_nan, what="--input")
    except BadInput as exc:
        detail = f" ({exc.detail})" if exc.detail else ""
        raise InvalidArgument(exc.message + detail) from None


commands = [
    list_command,
    get_command,
    delete_command,
    export_command,
    import_command,
    run_command,
    openapi_command,
]
