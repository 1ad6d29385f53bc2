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

An API request is read (up to ``max_body_size`` bytes), parsed by the API's adapter, passed to
the function and rendered by the adapter. Sync functions run in a thread pool so the event loop
never blocks: parsing, the call and rendering take one thread hop per request, or per batch for
batched APIs (their requests are parsed on the event loop, in the pool above 64 KiB, and meet in
their :class:`~bentolite.server.batching.Batcher`). ``async def`` functions are awaited.

Every error answer is JSON ``{"error": ..., "detail": ...}`` whose status is the error class's
``http_status``, mapped in one place (:func:`error_response`). Answers with status 500 also
carry an ``error_id`` under which the traceback is logged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from bentolite.adapters.base import HttpRequest, HttpResponse
from bentolite.bundle_meta import BundleMeta
from bentolite.exceptions import (
    ArtifactError,
    BadInput,
    BentoliteError,
    InferenceError,
    InvalidArgument,
    Overloaded,
    PayloadTooLarge,
    ServiceError,
)
from bentolite.server.batching import Batcher
from bentolite.server.docs import docs_routes
from bentolite.server.metrics import ApiMetrics, Metrics
from bentolite.server.openapi import clipper_alias, openapi_spec
from bentolite.service import ApiSpec, Service

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_SIZE = 32 * 1024 * 1024
_HAS_TIMEOUT_BLOCK = sys.version_info >= (3, 11)
#: bodies larger than this are parsed in the thread pool even when the function itself is not
INLINE_PARSE_LIMIT = 64 * 1024

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(value: int | str) -> int:
    """``'32MB'`` -> bytes. Units K, M, G (with or without ``B``/``iB``) are powers of 1024."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _SIZE_RE.match(str(value))
        if not match:
            raise InvalidArgument(f"size {value!r} is not understood; write e.g. 32MB, 512KB or 1048576")
        size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size <= 0:
        raise InvalidArgument(f"size {value!r} must be greater than 0")
    return size


# --- errors: the one place that turns an error into a response ---------------------------------
def error_response(exc: BentoliteError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON answer for ``exc``, with the status its class carries.

    A 5xx other than 503 is a server-side failure: it gets an id, logged with the traceback
    once even when the same error answers a whole batch.
    """
    body: dict[str, Any] = {"error": exc.message, "detail": exc.detail}
    if exc.http_status >= 500 and not isinstance(exc, Overloaded):
        error_id = getattr(exc, "error_id", None)
        if error_id is None:
            error_id = secrets.token_hex(6)
            exc.error_id = error_id  # type: ignore[attr-defined]
            logger.error("error id %s: %s", error_id, exc.message, exc_info=exc)
        body["error_id"] = error_id
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = BentoliteError("not found", detail=f"no route {request.url.path}; GET / lists the APIs")
    elif exc.status_code == 405:
        error = BentoliteError(
            f"method {request.method} not allowed",
            detail=f"{request.url.path} accepts {(exc.headers or {}).get('Allow', 'other methods')}",
        )
    else:
        error = BentoliteError(str(exc.detail))
    error.http_status = exc.status_code
    return error_response(error, headers=exc.headers)


def _unexpected_error(request: Request, exc: Exception) -> Response:
    error = InferenceError("internal server error", detail=f"{type(exc).__name__}; see the server log")
    error.__cause__ = exc
    return error_response(error)


# --- reading a request ---------------------------------------------------------------------------
async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The request body, or :class:`PayloadTooLarge` as soon as it exceeds ``limit`` bytes."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"request body of {int(declared)} bytes is over the server's limit of {limit} bytes",
            detail="raise it with bentolite serve --max-body-size",
        )
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadInput("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"request body is over the server's limit of {limit} bytes",
                detail="raise it with bentolite serve --max-body-size",
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# --- the server's state --------------------------------------------------------------------------
class ServerState:
    """What the routes of one app share: the service, readiness, metrics and the thread pool."""

    def __init__(
        self, service: Service, *, max_body_size: int, timeout: float | None, threads: int | None
    ) -> None:
        self.service = service
        self.max_body_size = max_body_size
        self.timeout = timeout
        self.threads = threads
        self.metrics = Metrics(service.name, service.version)
        self.status = "ok" if not service.artifacts.missing() else "loading"
        self.status_detail: str | None = None
        self.batchers: list[Batcher] = []
        self._executor: ThreadPoolExecutor | None = None
        self._loading: concurrent.futures.Future[None] | None = None
        self._openapi: bytes | None = None

    # thread pool
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="bentolite-api")
        return self._executor

    def run_sync(self, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self.executor(), func, *args)

    # readiness
    def start_loading(self) -> None:
        """Load the artifacts in the thread pool, once; the app answers /livez meanwhile."""
        if self.status != "loading" or self._loading is not None:
            return
        # a plain thread-pool future, not tied to one event loop
        self._loading = self.executor().submit(self._load)

    def _load(self) -> None:
        try:
            _load_artifacts(self.service)
        except Exception as exc:  # whatever stops loading, the server must report it, not die
            known = isinstance(exc, BentoliteError)
            self.status_detail = str(exc) if known else f"{type(exc).__name__}: {exc}"
            self.status = "failed"
            logger.error("%s cannot serve: %s", self.service.name, self.status_detail, exc_info=exc)
            return
        self.status = "ok"
        logger.info("%s is ready: artifacts loaded", self.service.name)

    def check_ready(self) -> None:
        if self.status == "ok":
            return
        self.start_loading()
        if self.status == "failed":  # 503 like "loading": the process is up but cannot serve
            raise Overloaded(
                f"{self.service.name} cannot serve: its artifacts failed to load", detail=self.status_detail
            )
        raise Overloaded(f"{self.service.name} is not ready yet: its artifacts are loading; retry shortly")

    # shutdown
    async def shutdown(self) -> None:
        for batcher in self.batchers:
            await batcher.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        Metrics.process_exiting()

    def openapi_json(self) -> bytes:
        if self._openapi is None:
            self._openapi = json.dumps(openapi_spec(self.service), indent=2).encode("utf-8")
        return self._openapi


def _load_artifacts(service: Service) -> None:
    path = service.bundle_path
    if path is None:  # create_app rejects this case; kept for a service changed afterwards
        raise ArtifactError(f"{service.name} has unpacked artifacts and no bundle to load them from")
    meta = BundleMeta.read(path)
    service.artifacts.load(path / "artifacts", {a.name: a.file for a in meta.artifacts})


# --- one API -------------------------------------------------------------------------------------
class ApiEndpoint:
    """The ASGI app behind ``POST /<route>`` of one API."""

    def __init__(self, state: ServerState, spec: ApiSpec) -> None:
        self.state = state
        self.spec = spec
        self.adapter = spec.adapter
        self.is_async = spec.is_async
        self.metrics: ApiMetrics = state.metrics.for_api(spec.name)
        self.batcher: Batcher | None = None
        if spec.batch:
            self.batcher = Batcher(
                spec.name,
                self._execute_batch,
                max_batch_size=spec.max_batch_size,
                max_latency_ms=spec.max_latency_ms,
                observe=self.metrics.batch,
            )
            state.batchers.append(self.batcher)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        in_flight = self.metrics.in_flight
        in_flight.inc()
        try:
            try:
                if self.state.timeout is None:
                    answer = await self._answer(scope, receive)
                elif _HAS_TIMEOUT_BLOCK:  # cheaper than wait_for: no extra task per request
                    async with asyncio.timeout(self.state.timeout):  # type: ignore[attr-defined]
                        answer = await self._answer(scope, receive)
                else:
                    answer = await asyncio.wait_for(self._answer(scope, receive), self.state.timeout)
                response: Response = Response(answer.body, answer.status, media_type=answer.media_type)
            except BentoliteError as exc:
                response = error_response(exc)
            except asyncio.TimeoutError:
                response = error_response(
                    Overloaded(
                        f"API {self.spec.name!r} did not answer within the server's timeout of "
                        f"{self.state.timeout:g} s",
                        detail="raise it with bentolite serve --timeout",
                    )
                )
            await response(scope, receive, send)
        finally:
            in_flight.dec()
        self.metrics.answered(response.status_code, time.perf_counter() - started)

    async def _answer(self, scope: Scope, receive: Receive) -> HttpResponse:
        self.state.check_ready()
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        body = await read_body(receive, headers, self.state.max_body_size)
        request = HttpRequest.from_content_type(body, headers.get("content-type"), headers=headers)
        if self.batcher is None and not self.is_async:
            return await self.state.run_sync(self._serve_one, request)
        if len(body) > INLINE_PARSE_LIMIT:
            payload = await self.state.run_sync(self._parse, request)
        else:
            payload = self._parse(request)
        if self.batcher is None:
            return self._render(await self._call_async(payload), payload)
        outcome = await self.batcher.submit(payload, self.adapter.batch_size(payload))
        if isinstance(outcome, BentoliteError):
            raise outcome
        return outcome

    def _parse(self, request: HttpRequest) -> Any:
        try:
            return self.adapter.from_http(request)
        except BentoliteError:
            raise
        except Exception as exc:  # whatever the client sent made parsing fail: a client error
            raise BadInput(
                f"the input cannot be read by {self.adapter.name}", detail=f"{type(exc).__name__}: {exc}"
            ) from exc

    def _call(self, payload: Any) -> Any:
        try:
            return self.spec.func(self.state.service, payload)
        except BentoliteError:
            raise  # the function chose the answer (e.g. BadInput for a 400)
        except Exception as exc:  # user code: any exception is the API's failure, not the server's
            raise self._failure(exc) from exc

    async def _call_async(self, payload: Any) -> Any:
        try:
            return await self.spec.func(self.state.service, payload)
        except BentoliteError:
            raise
        except Exception as exc:  # user code, as in _call
            raise self._failure(exc) from exc

    def _failure(self, exc: Exception) -> InferenceError:
        return InferenceError(
            f"API {self.spec.name!r} failed", detail=f"{type(exc).__name__}; see the server log"
        )

    def _render(self, result: Any, payload: Any) -> HttpResponse:
        try:
            return self.adapter.to_http(result, payload)
        except BentoliteError:
            raise
        except Exception as exc:  # a result the adapter cannot render is the API's failure
            raise InferenceError(
                f"the result of API {self.spec.name!r} cannot be rendered by {self.adapter.name}",
                detail=f"{type(exc).__name__}: {exc}",
            ) from exc

    def _serve_one(self, request: HttpRequest) -> HttpResponse:
        """An unbatched request to a sync function, in one thread-pool hop."""
        payload = self._parse(request)
        return self._render(self._call(payload), payload)

    # --- batches: each returns one outcome per payload, an HttpResponse or a BentoliteError ---
    async def _execute_batch(self, payloads: list[Any]) -> list[Any]:
        if not self.is_async:
            return await self.state.run_sync(self._run_batch, payloads)
        groups = self._groups(payloads)
        outcomes: list[Any] = []
        for batch, sizes, members in groups:
            try:
                outcomes += self._split_and_render(await self._call_async(batch), sizes, members)
            except BentoliteError as exc:
                if len(groups) == 1:
                    raise
                outcomes.append(exc)  # a group of one payload: only that caller fails
        return outcomes

    def _run_batch(self, payloads: list[Any]) -> list[Any]:
        """A batch for a sync function, in one thread-pool hop: merge, call, split, render."""
        groups = self._groups(payloads)
        outcomes: list[Any] = []
        for batch, sizes, members in groups:
            try:
                outcomes += self._split_and_render(self._call(batch), sizes, members)
            except BentoliteError as exc:
                if len(groups) == 1:
                    raise
                outcomes.append(exc)  # a group of one payload: only that caller fails
        return outcomes

    def _groups(self, payloads: list[Any]) -> list[tuple[Any, list[int], list[Any]]]:
        """What to call, as (batch, sizes, payloads): one merged group, or one group per payload
        when they do not merge."""
        merged = self._merge(payloads)
        if merged is not None:
            return [(merged[0], merged[1], payloads)]
        return [(*self.adapter.merge([payload]), [payload]) for payload in payloads]

    def _merge(self, payloads: list[Any]) -> tuple[Any, list[int]] | None:
        """The merged batch and sizes, or None when the payloads do not merge (say, arrays of
        different widths): then each is called on its own, so a malformed request fails alone."""
        try:
            return self.adapter.merge(payloads)
        except Exception:  # incompatible payloads; a lone one re-raises when merged on its own
            if len(payloads) == 1:
                raise
            logger.debug("API %s: a batch of %d did not merge", self.spec.name, len(payloads), exc_info=True)
            return None

    def _split_and_render(self, result: Any, sizes: list[int], payloads: list[Any]) -> list[Any]:
        try:
            parts = self.adapter.split(result, sizes)
        except BentoliteError:
            raise
        except Exception as exc:  # the function's result does not fit the batch
            raise InferenceError(
                f"the result of API {self.spec.name!r} cannot be split into {len(sizes)} answers",
                detail=f"{type(exc).__name__}: {exc}",
            ) from exc
        outcomes: list[Any] = []
        for part, payload in zip(parts, payloads):
            try:
                outcomes.append(self._render(part, payload))
            except BentoliteError as exc:  # only this caller's answer failed
                outcomes.append(exc)
        return outcomes


# --- the app ------------------------------------------------------------------------------------
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


def _server_routes(state: ServerState) -> list[BaseRoute]:
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
                "docs": "/docs",
            }
        )

    def status_response(ready_needed: bool) -> Response:
        state.start_loading()
        if state.status == "ok" or (state.status == "loading" and not ready_needed):
            return JSONResponse({"status": state.status, "detail": None})
        return JSONResponse({"status": state.status, "detail": state.status_detail}, status_code=503)

    async def livez(request: Request) -> Response:
        return status_response(ready_needed=False)

    async def readyz(request: Request) -> Response:
        return status_response(ready_needed=True)

    async def metrics(request: Request) -> Response:
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    async def docs_json(request: Request) -> Response:
        return Response(state.openapi_json(), media_type="application/json")

    return [
        Route("/", index, methods=["GET"]),
        Route("/healthz", readyz, methods=["GET"]),
        Route("/livez", livez, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/docs.json", docs_json, methods=["GET"]),
        *docs_routes(),
    ]


def create_app(
    service: Service,
    *,
    max_body_size: int | str = DEFAULT_MAX_BODY_SIZE,
    timeout: float | None = None,
    threads: int | None = None,
) -> Starlette:
    """The ASGI app serving ``service``.

    ``max_body_size`` (bytes, or a size such as ``"32MB"``) bounds request bodies (413 above);
    ``timeout`` (seconds) bounds each API request (503 past it); ``threads`` sizes the pool that
    runs sync functions (Python's default when None). Artifacts not loaded yet (a bundle loaded
    with ``load_artifacts=False``) load in the background at startup; ``/readyz`` reports when.
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
    state = ServerState(service, max_body_size=parse_size(max_body_size), timeout=timeout, threads=threads)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.start_loading()
        yield
        await state.shutdown()

    app = Starlette(
        # API routes first: they take every request that matters for throughput
        routes=[*_api_routes(state), *_server_routes(state)],
        exception_handlers={HTTPException: _http_error, Exception: _unexpected_error},
        lifespan=lifespan,
    )
    app.state.bentolite = state
    return app
