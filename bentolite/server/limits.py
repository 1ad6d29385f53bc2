"""Request limits: what one request may send, and reading a body within them.

:class:`Limits` gathers every bound of ``bentolite serve`` (each a ``serve`` option); the HTTP
protocol enforces the header bounds (``protocol.py``), :class:`InFlight` the per-worker bounds
on work in flight (``inflight.py``), and :class:`BodyReader` the body bounds: size, encoding.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Callable

import attrs
from starlette.types import Receive

from bentolite.adapters.multipart import DEFAULT_MAX_PART_HEADER_SIZE, DEFAULT_MAX_PARTS, FormLimits
from bentolite.exceptions import BadInput, InvalidArgument, PayloadTooLarge
from bentolite.server.encoding import codings, decode
from bentolite.server.inflight import InFlight

DEFAULT_MAX_BODY_SIZE = 32 * 1024 * 1024
DEFAULT_MAX_CONCURRENCY = 256
DEFAULT_MAX_INFLIGHT_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_HEADER_SIZE = 32 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0
#: bodies larger than this are parsed (and decoded) in the thread pool even when the function
#: itself is not
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


def _positive(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if value <= 0:
        raise InvalidArgument(f"{attribute.name}={value!r} must be greater than 0")


@attrs.frozen
class Limits:
    """Every bound the server puts on a request (sizes in bytes, times in seconds).

    ``max_body_size``: a body, as sent and as decoded (413). ``max_parts``,
    ``max_part_header_size``: a multipart body's parts (413) and each part's headers (400).
    ``max_concurrency``, ``max_inflight_bytes``: API requests, and their body bytes, one worker
    holds at once (503 with Retry-After past them). ``max_header_size``: the request line
    (414) and header block (431). ``header_timeout``: time to send the request line and
    headers (408, then the connection closes).
    """

    max_body_size: int = attrs.field(default=DEFAULT_MAX_BODY_SIZE, validator=_positive)
    max_parts: int = attrs.field(default=DEFAULT_MAX_PARTS, validator=_positive)
    max_part_header_size: int = attrs.field(default=DEFAULT_MAX_PART_HEADER_SIZE, validator=_positive)
    max_concurrency: int = attrs.field(default=DEFAULT_MAX_CONCURRENCY, validator=_positive)
    max_inflight_bytes: int = attrs.field(default=DEFAULT_MAX_INFLIGHT_BYTES, validator=_positive)
    max_header_size: int = attrs.field(default=DEFAULT_MAX_HEADER_SIZE, validator=_positive)
    header_timeout: float = attrs.field(default=DEFAULT_HEADER_TIMEOUT, validator=_positive)

    @property
    def form(self) -> FormLimits:
        return FormLimits(self.max_parts, self.max_part_header_size)


class BodyReader:
    """Reads request bodies within ``limits``, charging their bytes to ``in_flight``."""

    def __init__(
        self, limits: Limits, in_flight: InFlight, run_sync: Callable[..., asyncio.Future[Any]]
    ) -> None:
        self.limit = limits.max_body_size
        self.in_flight = in_flight
        self.run_sync = run_sync

    async def read(self, receive: Receive, headers: dict[str, str], slot: int) -> bytes:
        """The body, decoded if it has a Content-Encoding (``headers`` then loses it), or
        :class:`PayloadTooLarge` as soon as it exceeds the limit. A body without Content-Length
        is charged to the in-flight bytes as it arrives."""
        names = codings(headers.get("content-encoding"))  # 415 before reading anything
        limit = self.limit
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
            if declared is None:
                self.in_flight.charge(slot, size)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if not names:
            return body
        del headers["content-encoding"]
        if len(body) > INLINE_PARSE_LIMIT:
            decoded = await self.run_sync(decode, body, names, self.limit)
        else:
            decoded = decode(body, names, self.limit)
        self.in_flight.charge(slot, len(body) + len(decoded))
        return decoded
