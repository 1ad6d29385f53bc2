"""``AnswerCycle``: uvicorn's request/response cycle over httptools, with an API's whole answer
in one ASGI message.

An ASGI app answers in two messages, ``http.response.start`` (status and headers) and
``http.response.body``. For each, uvicorn's cycle runs a coroutine that checks the message's type
and the cycle's state, and for the head checks every header name and value against two regular
expressions, lower-cases the names and looks among them for the ones that set its framing,
then writes the part. For a small API answer that is more work than the model's own call in
some services.

An API endpoint already knows its whole answer and builds its headers itself (a length, a
content type checked once, the request id), so :class:`AnswerCycle` takes it as one message of
its own type, :data:`WHOLE_ANSWER`:

    {"type": "bentolite.http.response.whole", "status": 200,
     "head": b"content-length: 5\\r\\ncontent-type: application/json\\r\\n", "body": b"[0,1]"}

``head`` is the answer's header lines, each ending in CRLF, already checked by the sender, with
``content-length`` giving the body's size. The cycle writes the status line, the server's
default headers (rendered and checked once per value of that list, which uvicorn renews every
second for the ``date`` header), ``connection: close`` where the connection is not kept alive,
the head and the body in one write, and ends the cycle as uvicorn's ``send`` does: the answer
complete, the request's waiters woken, the connection closed when not kept alive, the next
pipelined request started. Every other message goes to uvicorn's ``send``.

The protocol (``protocol.py``) turns each cycle uvicorn builds into an ``AnswerCycle`` and marks
the request's scope with ``scope["extensions"]["bentolite.http.response.whole"]``; the endpoint
sends the one message only where it finds that mark (not under another server, nor under the
h11 protocol), and not where uvicorn's own access log is on (that log is written in its
``send``).
"""

from __future__ import annotations

import re
from typing import Any

from bentolite.server.joined_writes import HOLD_LIMIT

#: the type of the one message an API answer is sent in, and the scope extension announcing it
WHOLE_ANSWER = "bentolite.http.response.whole"

#: what uvicorn refuses in a header value (its ``HEADER_VALUE_RE``, here also where httptools is not)
_UNSAFE_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

try:
    from uvicorn.protocols.http.httptools_impl import HEADER_RE, STATUS_LINE, RequestResponseCycle
except ImportError:  # httptools is not installed: the h11 protocol serves, with uvicorn's own cycle
    RequestResponseCycle = object


def valid_header_value(value: bytes) -> bool:
    """Whether uvicorn would send ``value`` as a header value."""
    return _UNSAFE_VALUE.search(value) is None


#: the last list of default headers rendered, and its rendering
_defaults: tuple[Any, bytes] = (None, b"")


def render_defaults(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The header lines of the server's default headers, checked as uvicorn checks them."""
    global _defaults
    known, rendered = _defaults
    if headers is known:
        return rendered
    lines = []
    for name, value in headers:
        if HEADER_RE.search(name):
            raise RuntimeError("Invalid HTTP header name.")
        if not valid_header_value(value):
            raise RuntimeError("Invalid HTTP header value.")
        lines.append(name.lower() + b": " + value + b"\r\n")
    rendered = b"".join(lines)
    _defaults = (headers, rendered)
    return rendered


class AnswerCycle(RequestResponseCycle):  # type: ignore[misc,valid-type]
    """A uvicorn request/response cycle that also takes an answer in one message (see the
    module docstring)."""

    async def send(self, message: Any) -> None:
        if message["type"] != WHOLE_ANSWER:
            await super().send(message)
            return
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if self.response_started:
            raise RuntimeError(f"Unexpected ASGI message {WHOLE_ANSWER!r} sent, after the response started.")
        self.response_started = True
        self.waiting_for_100_continue = False
        self.chunked_encoding = False
        self.expected_content_length = 0
        self.response_complete = True
        parts = [STATUS_LINE[message["status"]], render_defaults(self.default_headers), message["head"]]
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        body = message["body"] if self.scope["method"] != "HEAD" else b""
        transport = self.transport  # a JoiningTransport (protocol.py)
        if len(body) < HOLD_LIMIT:
            parts.append(body)
            transport.write_whole(b"".join(parts))
        else:  # a large body is not copied into one with the head
            transport.write_whole(b"".join(parts))
            transport.write(body)
        self.message_event.set()
        if not self.keep_alive:
            transport.close()
        self.on_response()
