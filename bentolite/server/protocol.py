"""The HTTP/1.1 connection bentolite serves on: uvicorn's httptools protocol (its fast C parser),
or its h11 protocol where httptools is not installed, with bounds on the request head.

uvicorn alone holds a connection that never completes its request line and headers for as
long as the client keeps it open (its keep-alive timer runs only between requests), and
answers an oversized head with a plain-text 400. :class:`BoundedHttpToolsProtocol` and
:class:`BoundedH11Protocol` add the same bounds (:class:`_HeadBounds`):

* a header-read deadline: a client gets ``header_timeout`` seconds from its first byte (or
  from connecting) to send the request line and headers; past it the server answers 408 (or,
  when nothing at all was sent, just closes);
* JSON answers for a bad head: 414 for a request line longer than the header bound, 431 for a
  header block longer than it, 400 for a malformed head;
* a lingering close after such an answer: the rest of what the client sends is read and
  dropped (for at most ``LINGER_SECONDS`` and ``LINGER_BYTES``) so that the client reads the
  answer instead of a connection reset.

Both also hand uvicorn their connection's transport wrapped in a
:class:`~bentolite.server.joined_writes.JoiningTransport`, so that an answer's head and body
leave in one write (``joined_writes.py``). Over httptools, each request's cycle is an
:class:`~bentolite.server.answer_cycle.AnswerCycle`, which also takes an API's whole answer in
one message (``answer_cycle.py``).

The header bound is ``Limits.max_header_size``: h11 enforces it itself
(``max_incomplete_event_size``); over httptools the bytes of a head not yet complete are counted.
Per connection one timer serves the deadlines of all its heads: per request, the protocol
only notes when a head's deadline starts.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any, Callable

import h11
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

    from bentolite.server.answer_cycle import WHOLE_ANSWER, AnswerCycle
except ImportError:  # httptools is not installed (it has no wheels for some platforms)
    HttpToolsProtocol = None

from bentolite.exceptions import BadInput, BentoliteError, RequestHeaderTooLarge, RequestTimeout, UriTooLong
from bentolite.server.fair_start import FairStart
from bentolite.server.joined_writes import JoiningTransport

LINGER_SECONDS = 2.0
LINGER_BYTES = 4 * 1024 * 1024
_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


class _HeadBounds:
    """The header-read deadline and the JSON answers to a bad head, for either parser.

    The protocol class says when it awaits a head (:meth:`_awaiting_head`), calls
    :meth:`_head_data` before parsing what arrived and :meth:`_head_parsed` after.
    """

    header_timeout: float
    max_header_size: int
    transport: JoiningTransport
    loop: asyncio.AbstractEventLoop
    logger: Any

    def _init_bounds(self, header_timeout: float, max_header_size: int) -> None:
        self.header_timeout = header_timeout
        self.max_header_size = max_header_size
        self._head_timer: asyncio.TimerHandle | None = None
        #: when the deadline of the head being awaited started (None: no head awaited)
        self._head_since: float | None = None
        self._head_bytes = 0
        self._line_seen = False
        self._lingering = False
        self._dropped = 0

    def _awaiting_head(self) -> bool:
        raise NotImplementedError

    def _ending(self) -> bool:
        """Whether the last request read asked to close the connection (``Connection: close``,
        or HTTP/1.0): it is answered and the connection closed, and what the client sends after
        it is not read as a request (RFC 9112, 9.6), so it can never turn that answer into an
        error."""
        raise NotImplementedError

    # --- the header-read deadline ----------------------------------------------------------------
    def _arm(self) -> None:
        """Start the deadline of a head: from now."""
        self._head_bytes = 0
        self._line_seen = False
        self._head_since = self.loop.time()
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(self._head_since + self.header_timeout, self._head_check)

    def _disarm(self) -> None:
        """The head arrived (or was answered): no deadline until the next one starts. The timer
        stays armed and, when it fires, finds nothing to do (arming and cancelling a timer for
        every request of a kept-alive connection would cost more)."""
        self._head_since = None

    def _stop_timer(self) -> None:
        """The connection is gone: its timer too."""
        self._head_since = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_check(self) -> None:
        self._head_timer = None
        if self._head_since is None:  # no head awaited: the timer is armed again with the next
            return
        due = self._head_since + self.header_timeout
        if self.loop.time() < due:  # a later head than the one the timer was armed for
            self._head_timer = self.loop.call_at(due, self._head_check)
            return
        self._head_since = None
        self._head_timed_out()

    def _head_timed_out(self) -> None:
        if self.transport.is_closing() or not self._awaiting_head():
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

    def _head_data(self, data: bytes) -> bool:
        """Account for ``data`` before it is parsed; False when it is to be dropped."""
        if self._lingering:
            self._drop(data)
            return False
        if self._ending():
            return False
        if self._awaiting_head():
            if self._head_since is None:  # the next request on a kept-alive connection
                self._arm()
            self._head_bytes += len(data)
            if not self._line_seen and b"\n" in data:
                self._line_seen = True
        return True

    def _head_parsed(self) -> None:
        if self._head_since is not None and not self._awaiting_head():
            self._disarm()

    # --- a bad head ---------------------------------------------------------------------------------
    def _head_error(self, msg: str) -> BentoliteError:
        """What to answer when the parser refuses the head (or it grows past the bound)."""
        self._disarm()
        if self._head_bytes > self.max_header_size:
            if self._line_seen:
                return RequestHeaderTooLarge(
                    f"the request's header block is over the server's limit of {self.max_header_size} bytes",
                    detail="the bound is bentolite serve --max-header-size",
                )
            return UriTooLong(
                f"the request line is over the server's limit of {self.max_header_size} bytes",
                detail="send long inputs in the body; the bound is bentolite serve --max-header-size",
            )
        return BadInput("the request line or headers are not valid HTTP/1.1", detail=msg)

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this when its parser (h11 or httptools) refuses the head: say why, in
        JSON, with the right status. What follows a request that closes the connection is not
        answered, even when the parser refuses it in the same read: that request is."""
        if not self._ending():
            self._reject(self._head_error(msg))

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
        self.transport.linger_on_close(LINGER_SECONDS)
        self.transport.close()

    def _drop(self, data: bytes) -> None:
        self._dropped += len(data)
        if self._dropped > LINGER_BYTES:
            self.transport.close()


class BoundedH11Protocol(_HeadBounds, H11Protocol):
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
        max_size = config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        self._init_bounds(header_timeout, max_size)

    def _awaiting_head(self) -> bool:
        return self.conn.their_state is h11.IDLE

    def _ending(self) -> bool:
        return self.conn.their_state is h11.MUST_CLOSE

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(JoiningTransport(transport, self.loop))  # type: ignore[arg-type]
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._head_data(data):
            super().data_received(data)
            self._head_parsed()
            if self._ending():  # uvicorn closes after the answer: not before it is all read
                self.transport.linger_on_close(LINGER_SECONDS)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def eof_received(self) -> bool | None:
        if self._lingering:
            self.transport.close()
        return super().eof_received()


if HttpToolsProtocol is not None:
    #: how uvicorn starts a request's task (what :class:`BoundedHttpToolsProtocol` hands on)
    _uvicorn_start = getattr(HttpToolsProtocol, "_start_asgi_task", None)  # uvicorn 0.45 and later

    class BoundedHttpToolsProtocol(_HeadBounds, HttpToolsProtocol):
        """uvicorn's httptools protocol with the same head bounds as :class:`BoundedH11Protocol`."""

        def __init__(
            self,
            config: Config,
            server_state: ServerState,
            app_state: dict[str, Any],
            _loop: asyncio.AbstractEventLoop | None = None,
            *,
            header_timeout: float = 10.0,
            max_header_size: int = DEFAULT_MAX_INCOMPLETE_EVENT_SIZE,
            fair_start: FairStart | None = None,
        ) -> None:
            super().__init__(config, server_state, app_state, _loop)
            self._init_bounds(header_timeout, max_header_size)
            self._fair_start = fair_start
            #: when this connection became ready for its next request (``fair_start.py``)
            self._readiness = 0
            #: the last request read asked to close the connection (see ``_ending``)
            self._ends = False
            self._in_head = True
            #: the scope extensions of this connection's requests (none while uvicorn's own
            #: access log is on: it is written in the ``send`` the one-message answer skips)
            self._extensions = None if self.access_log else {WHOLE_ANSWER: {}}

        def _awaiting_head(self) -> bool:
            return self._in_head

        def _ending(self) -> bool:
            return self._ends

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(JoiningTransport(transport, self.loop))  # type: ignore[arg-type]
            self._readiness = FairStart.ready()
            self._arm()

        def data_received(self, data: bytes) -> None:
            if not self._head_data(data):
                return
            super().data_received(data)
            if self._lingering or self.transport.is_closing():
                return
            if self._in_head and self._head_bytes > self.max_header_size:
                self._reject(self._head_error("the request head is too large"))
            # a head that completed was disarmed in on_headers_complete; a line ending was seen
            # in _head_data, before parsing (so no per-header callback of ours either)

        def on_headers_complete(self) -> None:
            if self._ends:  # a request after one that closes, in the same read: not served
                return
            self._in_head = False
            # disarmed here, not after parsing: a whole request in one read has already set
            # _in_head again (on_message_complete) by the time data_received returns
            self._disarm()
            super().on_headers_complete()
            cycle = self.cycle
            # the task uvicorn just created for the cycle has not run yet: its first step is the
            # next of the loop, so the class and the scope are this request's before the app runs
            if (
                self._extensions is not None
                and cycle is not None
                and cycle.scope is self.scope
                and type(cycle) is RequestResponseCycle
            ):
                cycle.__class__ = AnswerCycle
                extensions = self.scope.get("extensions")
                if extensions is None:
                    self.scope["extensions"] = self._extensions
                else:
                    extensions[WHOLE_ANSWER] = {}

        def on_body(self, body: bytes) -> None:
            if not self._ends:  # else its body is not the current request's
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self._ends:
                return
            super().on_message_complete()
            self._in_head = True  # what follows on this connection is the next request's head
            self._head_bytes = 0
            cycle = self.cycle
            if cycle is not None and not cycle.keep_alive:  # uvicorn closes after its answer
                self._ends = True
                self.transport.linger_on_close(LINGER_SECONDS)

        def handle_upgrade(self) -> None:
            if not self._ends:
                super().handle_upgrade()

        def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
            """uvicorn (0.45 and later) starts each request here: with a :class:`FairStart`, at
            the end of the loop's turn, oldest-waiting connection first."""
            fair_start = self._fair_start
            if fair_start is None:
                _uvicorn_start(self, cycle, app)
            else:
                fair_start.start(self.loop, self._readiness, _uvicorn_start, self, cycle, app)

        def on_response_complete(self) -> None:
            self._readiness = FairStart.ready()  # before uvicorn starts a pipelined request
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_timer()
            super().connection_lost(exc)

        def eof_received(self) -> None:
            if self._lingering:
                self.transport.close()
                return
            super().eof_received()


def protocol_factory(header_timeout: float, max_header_size: int) -> Callable[..., Any]:
    """The protocol class (with its bounds) uvicorn is to build each connection with:
    httptools' when it is installed, else h11's."""
    if HttpToolsProtocol is not None:
        return functools.partial(
            BoundedHttpToolsProtocol,
            header_timeout=header_timeout,
            max_header_size=max_header_size,
            fair_start=FairStart(),
        )
    return functools.partial(BoundedH11Protocol, header_timeout=header_timeout)
