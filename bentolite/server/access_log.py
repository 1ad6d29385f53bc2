"""``write_access_line``: the access log's one line per request, cheaply.

A line logged through :mod:`logging` builds a ``LogRecord``, looks up its caller's frame, runs
the filters and the formatter, and flushes the handler: about 13 µs on a quiet core, and four
times that between two predictions that have emptied the CPU's caches, a fifth of a small model's
request. When the ``bentolite.access`` logger ends, as :func:`~bentolite.server.logs.log_config`
sets it up, at one stream handler with bentolite's text or JSON format, the line is formatted
here and written to that stream under the handler's lock: the same bytes, without the record.

Any other set-up (a handler or filter of the user's, another format, a changed clock) gets the
line through :mod:`logging` with its extra fields (``client``, ``method``, ``path``, ``status``,
``size``, ``duration_ms``), as before. Either way, unprintable characters of the path (a decoded
``%0A``, say) are written escaped in the message, so a client cannot forge a line of the log;
the ``path`` field keeps the path as it is (JSON escapes it). The set-up is checked again for
every line, by identity, so a logging configuration changed while serving is followed at once.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from starlette.types import Scope

from bentolite.server.logs import TEXT_FORMAT, JsonFormatter, RequestIdFilter, json_line

access_logger = logging.getLogger("bentolite.access")
#: the logger whose handler writes bentolite's lines (``bentolite.access`` propagates to it)
_parent = logging.getLogger("bentolite")
_MESSAGE = '%s "%s %s HTTP/%s" %d %dB %.2fms'


def write_access_line(scope: Scope, status: int, size: int, seconds: float, request_id: str) -> None:
    """Log one access line for the request of ``scope`` (the caller checked that INFO is on)."""
    client = scope.get("client")
    address = f"{client[0]}:{client[1]}" if client else "-"
    version = scope.get("http_version", "1.1")
    path = scope["path"]
    if not path.isprintable():  # a decoded %0A must not start a forged line of the log
        path = _escaped(path)
    message = _MESSAGE % (address, scope["method"], path, version, status, size, seconds * 1000)
    handler = _direct_handler()
    if handler is not None:
        now, msecs = _clock()
        if type(handler.formatter) is JsonFormatter:
            fields = _fields(address, scope, status, size, seconds)
            line = json_line(now, msecs, "info", access_logger.name, message, request_id, fields)
        else:
            line = TEXT_FORMAT % {
                "asctime": _local_time(now, msecs),
                "levelname": "INFO",
                "name": access_logger.name,
                "request_id": request_id,
                "message": message,
            }
        try:
            with handler.lock:  # type: ignore[union-attr]
                stream = handler.stream
                stream.write(line + handler.terminator)
                stream.flush()
            return
        except Exception:  # a closed or broken stream: logging reports it its own way
            pass
    access_logger.info(
        _MESSAGE,
        address,
        scope["method"],
        path,
        version,
        status,
        size,
        seconds * 1000,
        extra={**_fields(address, scope, status, size, seconds), "request_id": request_id},
    )


def _escaped(text: str) -> str:
    """``text`` with each unprintable character (line breaks, controls) as its escape, ``\\n``."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _fields(address: str, scope: Scope, status: int, size: int, seconds: float) -> dict[str, Any]:
    return {
        "client": address,
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "size": size,
        "duration_ms": round(seconds * 1000, 3),
    }


def _direct_handler() -> logging.StreamHandler[Any] | None:
    """The stream handler an access line can be written to directly, or None (see the module
    docstring): what logging would do for the line must be exactly a write to it."""
    if (
        access_logger.handlers
        or access_logger.filters
        or access_logger.disabled
        or not access_logger.propagate
    ):
        return None
    if access_logger.parent is not _parent or _parent.propagate or _parent.filters or _parent.disabled:
        return None
    if len(_parent.handlers) != 1:
        return None
    handler = _parent.handlers[0]
    if type(handler) is not logging.StreamHandler or handler.level > logging.INFO:
        return None
    filters = handler.filters
    if len(filters) != 1 or type(filters[0]) is not RequestIdFilter:
        return None
    formatter = handler.formatter
    if type(formatter) is JsonFormatter:
        return handler
    if (
        type(formatter) is logging.Formatter
        and formatter._fmt == TEXT_FORMAT
        and formatter.datefmt is None
        and formatter.converter is time.localtime
        and formatter.default_time_format == logging.Formatter.default_time_format
        and formatter.default_msec_format == logging.Formatter.default_msec_format
    ):
        return handler
    return None


def _clock() -> tuple[float, int]:
    """The time and its milliseconds, read as this Python's ``LogRecord`` reads them."""
    if sys.version_info >= (3, 13):
        ns = time.time_ns()
        return ns / 1e9, (ns % 1_000_000_000) // 1_000_000
    now = time.time()
    return now, int((now - int(now)) * 1000)


_second: int | None = None
_second_text = ""


def _local_time(now: float, msecs: int) -> str:
    """``now`` as logging's default ``asctime`` (``2026-12-02 01:33:27,457``), the date and
    time formatted once per second."""
    global _second, _second_text
    second = int(now)
    if second != _second:
        _second_text = time.strftime(logging.Formatter.default_time_format, time.localtime(now))
        _second = second
    return logging.Formatter.default_msec_format % (_second_text, msecs)
