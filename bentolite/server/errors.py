"""The one place that turns an error into an HTTP response: JSON ``{"error", "detail"}`` with
the status the error class carries, and an ``error_id`` for server-side failures."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bentolite.exceptions import BentoliteError, InferenceError, Overloaded
from bentolite.server.logs import request_id

logger = logging.getLogger("bentolite.server.app")


def error_response(exc: BentoliteError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON answer for ``exc``, with the status its class carries.

    A 5xx other than 503 is a server-side failure: it gets an id, logged with the traceback
    once even when the same error answers a whole batch. A 503 (:class:`Overloaded`) carries
    ``Retry-After``. The body carries the request id too (``request_id``), as the response's
    ``X-Request-ID`` header does.
    """
    body: dict[str, Any] = {"error": exc.message, "detail": exc.detail, **exc.extra_body()}
    rid = request_id.get()
    if rid is not None:
        body["request_id"] = rid
    if isinstance(exc, Overloaded):  # every 503 tells the client when to come back
        headers = {**(headers or {}), "Retry-After": str(exc.retry_after)}
    elif exc.http_status >= 500:
        error_id = getattr(exc, "error_id", None)
        if error_id is None:
            error_id = secrets.token_hex(6)
            exc.error_id = error_id  # type: ignore[attr-defined]
            logger.error("error id %s: %s", error_id, exc.message, exc_info=exc)
        body["error_id"] = error_id
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


def http_error(request: Request, exc: Exception) -> Response:
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


def unexpected_error(request: Request, exc: Exception) -> Response:
    return internal_error(exc)


def internal_error(exc: Exception) -> Response:
    """The 500 for an exception no other layer answered (logged with its traceback)."""
    error = InferenceError("internal server error", detail=f"{type(exc).__name__}; see the server log")
    error.__cause__ = exc
    return error_response(error)
