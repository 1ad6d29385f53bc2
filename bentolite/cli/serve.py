"""``bentolite serve``: serve a service over HTTP."""

from __future__ import annotations

import click

from bentolite.exceptions import InvalidArgument


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    from bentolite.server.limits import parse_size

    try:
        return parse_size(value)
    except InvalidArgument as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.argument("target")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", default=3000, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes sharing the port; each loads its own copy of the service.",
)
@click.option("--reload", is_flag=True, help="Restart when the service's source files change (development).")
@click.option(
    "--max-body-size",
    default="32MB",
    show_default=True,
    callback=_size,
    help="Largest request body accepted (413 above); K, M, G are powers of 1024.",
)
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a request may take (503 past it); also bounds the drain at shutdown.",
)
@click.option(
    "--max-concurrency",
    default=256,
    show_default=True,
    type=click.IntRange(min=1),
    help="API requests one worker holds at once (503 with Retry-After past it).",
)
@click.option(
    "--max-inflight-bytes",
    default="64MB",
    show_default=True,
    callback=_size,
    help="Request body bytes one worker holds at once; a request that finds none in flight is always taken.",
)
@click.option(
    "--max-parts",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Parts a multipart body may hold (413 above).",
)
@click.option(
    "--max-part-header-size",
    default="8KB",
    show_default=True,
    callback=_size,
    help="Header bytes of one multipart part (400 above).",
)
@click.option(
    "--max-header-size",
    default="32KB",
    show_default=True,
    callback=_size,
    help="Request line (414 above) and header block (431 above).",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a client has to send its request line and headers (408, then closed).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug", "trace"]),
)
def serve(
    target: str,
    host: str,
    port: int,
    workers: int,
    reload: bool,
    max_body_size: int,
    timeout: float,
    max_concurrency: int,
    max_inflight_bytes: int,
    max_parts: int,
    max_part_header_size: int,
    max_header_size: int,
    header_timeout: float,
    log_level: str,
) -> None:
    """Serve TARGET over HTTP: a tag (Name, Name:latest, Name:version), a bundle directory, a
    directory with a bentofile.yaml, or module.py:attr (a packed Service instance, or a Service
    class without artifacts) for development.

    Routes: POST /<api> per API, GET /docs (Swagger UI), /docs.json (OpenAPI), /metrics
    (Prometheus), /healthz, /livez, /readyz and / (name, version, APIs). SIGTERM drains the
    requests in flight before exiting.
    """
    from bentolite.server.limits import Limits
    from bentolite.server.runner import serve as run

    limits = Limits(
        max_body_size=max_body_size,
        max_parts=max_parts,
        max_part_header_size=max_part_header_size,
        max_concurrency=max_concurrency,
        max_inflight_bytes=max_inflight_bytes,
        max_header_size=max_header_size,
        header_timeout=header_timeout,
    )
    run(
        target,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        timeout=timeout,
        log_level=log_level,
        limits=limits,
    )


commands = [serve]
