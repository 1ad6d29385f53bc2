"""``create_app(service)``: the ASGI (Starlette) application serving one service over HTTP.

Routes, built from a list of ``Route`` objects:

====================  =====  ===========================================================
``/<route>``          POST   one per API (the route defaults to the API's name)
``/<route>/predict``  POST   also, for Clipper-adapter APIs: where Clipper clients post
``/``                 GET    service name, version and APIs
``/healthz``          GET    health, for image health checks: the same answer as ``/readyz``
``/livez``            GET    liveness: 200 while the process serves, even while loading;
                             503 once its artifacts failed to load (restarting may help)
``/readyz``           GET    readiness: 200 once the artifacts are loaded, 503 before
``/metrics``          GET    Prometheus text (``metrics.py``)
``/docs.json``        GET    OpenAPI 3 (``openapi.py``)
``/docs``             GET    Swagger UI (``docs.py``)
====================  =====  ===========================================================

An API request is read (up to ``max_body_size`` bytes), parsed by the API's input adapter, passed
to the function, and the result rendered by its output adapter. Sync functions run in a thread
pool so the event loop never blocks: parsing, the call and rendering take one thread hop per
request, or per batch for batched APIs (their requests are parsed on the event loop, in the pool
above 64 KiB, and meet in their :class:`~bentolite.server.batching.Batcher`). ``async def``
functions are awaited.

The pieces: ``limits.py`` (the bounds, reading a body), ``encoding.py`` (Content-Encoding),
``inflight.py`` (admission, and what is in flight), ``protocol.py`` (header bounds),
``errors.py`` (error -> response), ``state.py`` (what routes share), ``endpoint.py`` (one API),
``middleware.py`` (request ids and the access log, the outermost layer). With ``cors_origins``,
Starlette's ``CORSMiddleware`` answers browsers' preflight ``OPTIONS`` requests and adds the CORS
headers; ``docs=False`` leaves out ``/docs`` and ``/docs.json``.

Every error answer is JSON ``{"error": ..., "detail": ...}`` whose status is the error class's
``http_status``, mapped in one place (:func:`error_response`). Answers with status 500 also
carry an ``error_id`` under which the traceback is logged.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from bentolite.exceptions import ArtifactError, InvalidArgument, ServiceError
from bentolite.server.docs import docs_routes
from bentolite.server.endpoint import ApiEndpoint
from bentolite.server.errors import http_error, unexpected_error
from bentolite.server.limits import DEFAULT_MAX_BODY_SIZE, Limits, parse_size
from bentolite.server.middleware import RequestIdMiddleware
from bentolite.server.openapi import clipper_alias
from bentolite.server.state import ServerState
from bentolite.service import Service

__all__ = ["DEFAULT_MAX_BODY_SIZE", "Limits", "create_app", "parse_size"]


def _api_routes(state: ServerState) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    taken = {spec.route for spec in state.service.apis.values()}
    for spec in state.service.apis.values():
        endpoint = ApiEndpoint(state, spec)
        routes.append(Route(f"/{spec.route}", endpoint, methods=["POST"], name=spec.name))
        alias = clipper_alias(spec)
        if alias and alias not in taken:
            # a client written for a Clipper application posts to /<app>/predict[/]
            routes.append(Route(f"/{alias}", endpoint, methods=["POST"]))
            routes.append(Route(f"/{alias}/", endpoint, methods=["POST"]))
    return routes


def _server_routes(state: ServerState, docs: bool) -> list[BaseRoute]:
    service = state.service

    async def index(request: Request) -> Response:
        return JSONResponse(
            {
                "name": service.name,
                "version": service.version,
                "apis": [
                    {
                        "name": spec.name,
                        "route": f"/{spec.route}",
                        "input": spec.adapter.name,
                        "batch": spec.batch,
                        "doc": spec.doc,
                    }
                    for spec in service.apis.values()
                ],
                "docs": "/docs" if docs else None,
            }
        )

    def status_response(ready_needed: bool) -> Response:
        state.start_loading()
        if state.status == "ok" or (state.status == "loading" and not ready_needed):
            return JSONResponse({"status": state.status, "detail": None})
        return JSONResponse(
            {"status": state.status, "detail": state.status_detail},
            status_code=503,
            headers={"Retry-After": str(state.retry_after())},
        )

    async def livez(request: Request) -> Response:
        return status_response(ready_needed=False)

    async def readyz(request: Request) -> Response:
        return status_response(ready_needed=True)

    async def metrics(request: Request) -> Response:
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    async def docs_json(request: Request) -> Response:
        return Response(state.openapi_json(), media_type="application/json")

    routes: list[BaseRoute] = [
        Route("/", index, methods=["GET"]),
        Route("/healthz", readyz, methods=["GET"]),
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if docs:
        routes += [Route("/docs.json", docs_json, methods=["GET"]), *docs_routes()]
    return routes


class ServerApp(Starlette):
    """Starlette with :class:`RequestIdMiddleware` outside everything, Starlette's own error
    layer included, so every answer (a 500 too) carries the request id and is logged.

    Without other middleware (CORS), a POST to an API route goes from there straight to its
    :class:`ApiEndpoint`, which answers every error itself: the router and Starlette's two
    error layers would only add their cost to each prediction."""

    def __init__(self, *, access_log: bool, log_probes: bool, **kwargs: Any) -> None:
        self._access = {"access_log": access_log, "log_probes": log_probes}
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        direct: dict[str, ApiEndpoint] = {}
        if not self.user_middleware:
            for route in self.routes:
                if isinstance(route, Route) and isinstance(route.app, ApiEndpoint) and "{" not in route.path:
                    direct[route.path] = route.app
        return RequestIdMiddleware(super().build_middleware_stack(), direct=direct, **self._access)


def _cors(origins: Sequence[str]) -> list[Middleware]:
    from starlette.middleware.cors import CORSMiddleware

    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID"],
            max_age=600,
        )
    ]


def create_app(
    service: Service,
    *,
    max_body_size: int | str | None = None,
    timeout: float | None = None,
    threads: int | None = None,
    limits: Limits | None = None,
    record_path: str | None = None,
    cors_origins: Sequence[str] = (),
    docs: bool = True,
    access_log: bool = True,
    log_probes: bool = False,
) -> Starlette:
    """The ASGI app serving ``service``.

    ``limits`` bounds what a request may send and what one process holds at once
    (:class:`~bentolite.server.limits.Limits`); ``max_body_size`` (bytes, or a size such as
    ``"32MB"``), if given, overrides its body size (413 above). ``timeout`` (seconds) bounds
    each API request (503 past it); ``threads`` sizes the pool that runs sync functions
    (Python's default when None). ``record_path`` is the file where the supervisor of
    ``bentolite serve`` reads what this worker has in flight. Artifacts not loaded yet (a
    bundle loaded with ``load_artifacts=False``) load in the background at startup;
    ``/readyz`` reports when.

    ``cors_origins`` lists the origins browsers may call the server from (``"*"``: any);
    ``docs=False`` serves no ``/docs`` nor ``/docs.json``; ``access_log`` writes a line per
    request to the ``bentolite.access`` logger, probe routes included when ``log_probes``.
    """
    if timeout is not None and timeout <= 0:
        raise InvalidArgument(f"timeout {timeout!r} must be greater than 0 seconds")
    missing = service.artifacts.missing()
    if missing and service.bundle_path is None:
        raise ArtifactError(
            f"{service.name} cannot be served: artifact(s) {', '.join(missing)} are not packed; "
            "pack them (svc.pack(name, obj)) or serve a saved bundle"
        )
    if not service.apis:
        raise ServiceError(f"{service.name} has no API to serve: decorate a method with @api(input=...)")
    limits = limits or Limits()
    if max_body_size is not None:
        limits = attrs.evolve(limits, max_body_size=parse_size(max_body_size))
    state = ServerState(service, limits=limits, timeout=timeout, threads=threads, record_path=record_path)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.start_loading()
        if state.status == "ok":  # else once the artifacts have loaded (state.py)
            state.in_flight.mark_serving()
        yield
        await state.shutdown()

    app = ServerApp(
        # API routes first: they take every request that matters for throughput
        routes=[*_api_routes(state), *_server_routes(state, docs)],
        middleware=_cors(cors_origins),
        exception_handlers={HTTPException: http_error, Exception: unexpected_error},
        lifespan=lifespan,
        access_log=access_log,
        log_probes=log_probes,
    )
    app.state.bentolite = state
    return app
