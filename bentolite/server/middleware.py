"""``RequestIdMiddleware``: the outermost layer of the server, in plain ASGI (no per-request task
or body buffering, unlike Starlette's ``BaseHTTPMiddleware``).

For every HTTP request it:

* takes the client's ``X-Request-ID`` when it is 1 to 128 characters of ``A-Z a-z 0-9 . _ ~ : @
  + = / -``, or makes a new one (32 hex digits: 16 random per process, then a counter; unique,
  not secret), and sets it as the current request id
  (:data:`bentolite.server.logs.request_id`), so log lines and error bodies carry it;
* returns it in the response's ``X-Request-ID`` header;
* writes one access line to the ``bentolite.access`` logger at INFO once the response is sent:
  client, method, path, status, body size, latency and request id. Probe routes (``/healthz``,
  ``/livez``, ``/readyz``, ``/metrics``) are left out unless ``log_probes`` is set. The line
  is written by ``access_log.py``.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bentolite.server.access_log import access_logger, write_access_line
from bentolite.server.logs import request_id

if TYPE_CHECKING:
    from bentolite.server.endpoint import ApiEndpoint

REQUEST_ID_HEADER = b"x-request-id"
PROBE_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})
_VALID_ID = re.compile(rb"[A-Za-z0-9._~:@+=/-]{1,128}")


def incoming_request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The client's ``X-Request-ID`` if it is safe to echo and log, else None."""
    for key, value in headers:
        if key == REQUEST_ID_HEADER:
            return value.decode("ascii") if _VALID_ID.fullmatch(value) else None
    return None


_prefix = os.urandom(8).hex()
_counter = itertools.count()


def _new_prefix() -> None:
    global _prefix, _counter
    _prefix, _counter = os.urandom(8).hex(), itertools.count()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_prefix)  # a forked worker draws its own prefix


def new_request_id() -> str:
    """A fresh id: a random prefix drawn once per process, then a counter (no system call per
    request, as the random source would cost)."""
    return f"{_prefix}{next(_counter) & 0xFFFFFFFFFFFFFFFF:016x}"


class RequestIdMiddleware:
    """Request id in and out, and one access log line per request (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        access_log: bool = True,
        log_probes: bool = False,
        direct: dict[str, ApiEndpoint] | None = None,
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.log_probes = log_probes
        #: path -> endpoint of the POST routes that need no other layer (the API endpoints, which
        #: answer their own errors and add the request id): they skip the router, Starlette's
        #: error layers and the wrapper of ``send``
        self.direct = direct or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = incoming_request_id(scope["headers"]) or new_request_id()
        id_header = (REQUEST_ID_HEADER, rid.encode("ascii"))
        status = 500  # what the client gets if the app fails before answering
        size = 0
        token = request_id.set(rid)
        direct = None
        if scope["method"] == "POST" and not scope.get("root_path"):
            direct = self.direct.get(scope["path"])
        try:
            if direct is not None:  # it answers every error itself, and adds the header
                status, size = await direct.serve(scope, receive, send, (id_header,), server_send=True)
            else:

                async def send_with_id(message: Message) -> None:
                    nonlocal status, size
                    if message["type"] == "http.response.start":
                        status = message["status"]
                        message["headers"] = [*message.get("headers", ()), id_header]
                    elif message["type"] == "http.response.body":
                        size += len(message.get("body", b""))
                    await send(message)

                await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log and access_logger.isEnabledFor(logging.INFO):
                if self.log_probes or scope["path"] not in PROBE_PATHS:
                    write_access_line(scope, status, size, time.perf_counter() - started, rid)
            request_id.reset(token)
