"""``bentolite serve``: serve a service over HTTP.

Every option can also be set by an environment variable (``BENTOLITE_<OPTION>``, shown in
``--help``); an option on the command line wins. The port also follows ``PORT``, the variable
platforms such as Cloud Run and Heroku set: ``--port`` > ``BENTOLITE_PORT`` > ``PORT`` > 3000.
"""

from __future__ import annotations

from typing import Any

import click

from bentolite.exceptions import InvalidArgument


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    from bentolite.server.limits import parse_size

    try:
        return parse_size(value)
    except InvalidArgument as exc:
        raise click.BadParameter(str(exc)) from None


def _option(*decls: str, env: str | list[str], **kwargs: Any) -> Any:
    """A click option settable by environment, the variable shown in --help."""
    return click.option(*decls, envvar=env, show_envvar=True, **kwargs)


@click.command()
@click.argument("target")
@_option(
    "--host",
    env="BENTOLITE_HOST",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: all).",
)
@_option(
    "--port",
    env=["BENTOLITE_PORT", "PORT"],
    default=3000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port (0: any free port).",
)
@_option(
    "--workers",
    env="BENTOLITE_WORKERS",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes sharing the port; each loads its own copy of the service.",
)
@_option(
    "--reload",
    env="BENTOLITE_RELOAD",
    is_flag=True,
    help="Restart when the service's source files change (development).",
)
@_option(
    "--max-body-size",
    env="BENTOLITE_MAX_BODY_SIZE",
    default="32MB",
    show_default=True,
    callback=_size,
    help="Largest request body accepted (413 above); K, M, G are powers of 1024.",
)
@_option(
    "--timeout",
    env="BENTOLITE_TIMEOUT",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a request may take (503 past it); also bounds the drain at shutdown.",
)
@_option(
    "--max-concurrency",
    env="BENTOLITE_MAX_CONCURRENCY",
    default=256,
    show_default=True,
    type=click.IntRange(min=1),
    help="API requests one worker holds at once (503 with Retry-After past it).",
)
@_option(
    "--max-inflight-bytes",
    env="BENTOLITE_MAX_INFLIGHT_BYTES",
    default="64MB",
    show_default=True,
    callback=_size,
    help="Request body bytes one worker holds at once; a request that finds none in flight is always taken.",
)
@_option(
    "--max-parts",
    env="BENTOLITE_MAX_PARTS",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Parts a multipart body may hold (413 above).",
)
@_option(
    "--max-part-header-size",
    env="BENTOLITE_MAX_PART_HEADER_SIZE",
    default="8KB",
    show_default=True,
    callback=_size,
    help="Header bytes of one multipart part (400 above).",
)
@_option(
    "--max-header-size",
    env="BENTOLITE_MAX_HEADER_SIZE",
    default="32KB",
    show_default=True,
    callback=_size,
    help="Request line (414 above) and header block (431 above).",
)
@_option(
    "--header-timeout",
    env="BENTOLITE_HEADER_TIMEOUT",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a client has to send its request line and headers (408, then closed).",
)
@_option(
    "--cors-origin",
    "cors_origins",
    env="BENTOLITE_CORS_ORIGINS",
    multiple=True,
    metavar="ORIGIN",
    help="An origin browsers may call the server from (https://app.example.com, or * for any); "
    "repeat for several (the variable: separated by spaces). Without it, the bundle's "
    "bentofile serve.cors_origins.",
)
@_option(
    "--disable-docs",
    env="BENTOLITE_DISABLE_DOCS",
    is_flag=True,
    help="Serve no /docs (Swagger UI) nor /docs.json (OpenAPI).",
)
@_option(
    "--log-level",
    env="BENTOLITE_LOG_LEVEL",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug", "trace"]),
    help="Least severe log lines written; access lines are info.",
)
@_option(
    "--log-format",
    env="BENTOLITE_LOG_FORMAT",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    help="Log lines as text, or as one JSON object per line.",
)
@_option(
    "--access-log/--no-access-log",
    env="BENTOLITE_ACCESS_LOG",
    default=True,
    show_default=True,
    help="A line per request: client, method, path, status, size, latency, request id.",
)
@_option(
    "--log-probes",
    env="BENTOLITE_LOG_PROBES",
    is_flag=True,
    help="Also log requests to /healthz, /livez, /readyz and /metrics.",
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
    cors_origins: tuple[str, ...],
    disable_docs: bool,
    log_level: str,
    log_format: str,
    access_log: bool,
    log_probes: bool,
) -> None:
    """Serve TARGET over HTTP: a tag (Name, Name:latest, Name:version), a bundle directory, a
    directory with a bentofile.yaml, or module.py:attr (a packed Service instance, or a Service
    class without artifacts) for development.

    Routes: POST /<api> per API, GET /docs (Swagger UI), /docs.json (OpenAPI), /metrics
    (Prometheus), /healthz, /livez, /readyz and / (name, version, APIs). Every response carries
    an X-Request-ID (the client's, when it sends a valid one). SIGTERM drains the requests in
    flight before exiting.

    Every option may be set by the environment variable shown; the port also by PORT
    (--port > BENTOLITE_PORT > PORT > 3000).
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
        log_format=log_format,
        access_log=access_log,
        log_probes=log_probes,
        cors_origins=cors_origins or None,  # None: the origins the bundle records
        docs=not disable_docs,
    )


commands = [serve]
