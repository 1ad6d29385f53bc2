"""The server's logging: the request id of the request being handled, and the log configuration
``bentolite serve`` hands to uvicorn (text or JSON lines, the request id in every line).

The request id lives in a context variable that :class:`~bentolite.server.middleware.RequestIdMiddleware`
sets for each request; every task and thread-pool call made while handling the request sees it,
so any log line written meanwhile carries it (``-`` outside a request). Nothing here touches
logging until :func:`log_config` is given to ``logging.config.dictConfig`` (uvicorn does that).
"""

from __future__ import annotations

import contextvars
import copy
import json
import logging
import time
from typing import Any

#: the id of the request being handled; None outside a request
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("bentolite_request_id", default=None)

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
#: attributes of a LogRecord that are not extra fields of a JSON line
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "color_message",
}


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record as ``record.request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get() or "-"
        return True


def json_line(
    created: float, msecs: int, level: str, name: str, message: str, request_id: str, fields: dict[str, Any]
) -> str:
    """One JSON log line: time (UTC, milliseconds), level, logger, message, the request id
    unless it is ``-``, then ``fields``. :class:`JsonFormatter` writes every record with it, and
    the access log (``access_log.py``) its direct lines."""
    line: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{msecs:03d}Z",
        "level": level,
        "logger": name,
        "message": message,
    }
    if request_id != "-":
        line["request_id"] = request_id
    line.update(fields)
    return json.dumps(line, default=str, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, the record's extra
    fields (an access line's method, path, status, ...) and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS and not k.startswith("_")}
        if record.exc_info:
            fields["exc_info"] = self.formatException(record.exc_info)
        return json_line(
            record.created,
            int(record.msecs),
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            getattr(record, "request_id", "-"),
            fields,
        )


def log_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """The ``logging.config.dictConfig`` mapping for a server: uvicorn's and bentolite's loggers on
    one stderr handler, in ``log_format`` (``text`` or ``json``), each line with its request id.
    uvicorn's own access log is off: ``bentolite.access`` writes one line per request instead."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"request_id": {"()": RequestIdFilter}}
    if log_format == "json":
        config["formatters"] = {"default": {"()": JsonFormatter}}
    else:
        config["formatters"] = {"default": {"format": TEXT_FORMAT}}
    config["handlers"] = {
        "default": {
            "formatter": "default",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "filters": ["request_id"],
        }
    }
    upper = level.upper()  # uvicorn registers the TRACE level name
    config["loggers"] = {
        "uvicorn": {"handlers": ["default"], "level": upper, "propagate": False},
        "uvicorn.error": {"level": upper},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        "bentolite": {"handlers": ["default"], "level": upper, "propagate": False},
    }
    return config
