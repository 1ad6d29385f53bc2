"""The HTTP/1.1 connection bentolite serves on: uvicorn's h11 protocol with bounds on the
request head.

uvicorn alone holds a connection that never completes its request line and headers for as
long as the client keeps it open (its keep-alive timer runs only between requests), and
answers an oversized head with a plain-text 400. :class:`BoundedH11Protocol` adds:

* a header-read deadline: a client gets ``header_timeout`` seconds from its first byte (or
  from connecting) to send the request line and headers; past it the server answers 408 (or,
  when nothing at all was sent, just closes);
* JSON answers for a bad head: 414 for a request line longer than the header bound, 431 for a
  header block longer than it, 400 for a malformed head;
* a lingering close after such an answer: the rest of what the client sends is read and
  dropped (for at most ``LINGER_SECONDS`` and ``LINGER_BYTES``) so that the client reads the
  answer instead of a connection reset.

The header bound itself is h11's ``max_incomplete_event_size`` (``Limits.max_header_size``).
Per request the protocol arms and cancels one timer, a few microseconds.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from bentolite.exceptions import BadInput, BentoliteError, RequestHeaderTooLarge, RequestTimeout, UriTooLong

LINGER_SECONDS = 2.0
LINGER_BYTES = 4 * 1024 * 1024
_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header-read deadline and JSON answers to a bad head."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        header_timeout: float = 10.0,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = header_timeout
        self.max_header_size = config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._line_seen = False
        self._lingering = False
        self._dropped = 0

    # --- the header-read deadline ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._head_bytes = 0
        self._line_seen = False
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self._head_bytes == 0:  # an idle connection: nothing to answer
            self.transport.close()
            return
        self.logger.warning(
            "Request head not received within %g s; closing the connection.", self.header_timeout
        )
        self._reject(
            RequestTimeout(
                f"the request line and headers did not arrive within {self.header_timeout:g} s",
                detail="the bound is bentolite serve --header-timeout",
            )
        )

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._drop(data)
            return
        awaiting_head = self.conn.their_state is h11.IDLE
        if awaiting_head:
            if self._head_timer is None:  # the next request on a kept-alive connection
                self._arm()
            self._head_bytes += len(data)
            if not self._line_seen and b"\n" in data:
                self._line_seen = True
        super().data_received(data)
        if self._head_timer is not None and self.conn.their_state is not h11.IDLE:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # --- a bad head ---------------------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this when h11 refuses the head: say why, in JSON, with the right status."""
        self._disarm()
        if self._head_bytes > self.max_header_size:
            if self._line_seen:
                error: BentoliteError = RequestHeaderTooLarge(
                    f"the request's header block is over the server's limit of {self.max_header_size} bytes",
                    detail="the bound is bentolite serve --max-header-size",
                )
            else:
                error = UriTooLong(
                    f"the request line is over the server's limit of {self.max_header_size} bytes",
                    detail="send long inputs in the body; the bound is bentolite serve --max-header-size",
                )
        else:
            error = BadInput("the request line or headers are not valid HTTP/1.1", detail=msg)
        self._reject(error)

    def _reject(self, error: BentoliteError) -> None:
        """Answer ``error`` and close the connection, after reading what the client still sends."""
        status = error.http_status
        body = json.dumps({"error": error.message, "detail": error.detail}).encode()
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head % (status, _REASONS.get(status, b"Error"), len(body)) + body)
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()

    def _drop(self, data: bytes) -> None:
        self._dropped += len(data)
        if self._dropped > LINGER_BYTES:
            self.transport.close()

    def eof_received(self) -> bool | None:
        if self._lingering:
            self.transport.close()
        return super().eof_received()
