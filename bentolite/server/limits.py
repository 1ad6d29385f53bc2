"""Request limits: the body-size option and reading a body within it."""

from __future__ import annotations

import re

from starlette.types import Receive

from bentolite.exceptions import BadInput, InvalidArgument, PayloadTooLarge

DEFAULT_MAX_BODY_SIZE = 32 * 1024 * 1024
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
