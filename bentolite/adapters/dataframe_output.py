"""``DataframeOutput``: a table as JSON records or columns, or as CSV when ``Accept`` asks."""

from __future__ import annotations

from typing import Any

from bentolite.adapters.base import HttpRequest, HttpResponse, check_example
from bentolite.adapters.json_encoding import json_dumps
from bentolite.adapters.outputs import Output
from bentolite.exceptions import InferenceError, InvalidArgument, NotAcceptable

_JSON = "application/json"
_ORIENTS = ("records", "columns")
_CSV = "text/csv"


class DataframeOutput(Output):
    """A table: JSON (``output_orient="records"``: a list of row objects, or ``"columns"``: an
    object of column name -> list of values), or CSV with a header row when the request's
    ``Accept`` header prefers ``text/csv``.

    The result may be a DataFrame, a Series (one column), an array or a list of rows. In JSON,
    NaN cells are ``null``; in CSV they are empty fields. A request whose ``Accept`` allows
    neither JSON nor CSV gets 406.
    """

    error_statuses = ("406",)

    def __init__(self, output_orient: str = "records", *, example: Any = None) -> None:
        self.example = check_example(self.name, example, what="an answer")
        if output_orient not in _ORIENTS:
            raise InvalidArgument(
                f"DataframeOutput(output_orient={output_orient!r}) is not supported; use one of {_ORIENTS}"
            )
        self.output_orient = output_orient

    def options(self) -> dict[str, Any]:
        return {"output_orient": self.output_orient}

    def to_http(self, result: Any, request: HttpRequest, payload: Any = None) -> HttpResponse:
        frame = _as_frame(result)
        if negotiate(request.headers.get("accept", ""), (_JSON, _CSV)) == _CSV:
            csv = frame.to_csv(index=False).encode("utf-8")
            return HttpResponse(csv, media_type="text/csv; charset=utf-8")
        if self.output_orient == "columns":
            frame = {str(c): frame[c] for c in frame.columns}
        return HttpResponse(json_dumps(frame), media_type=_JSON)

    def openapi_response(self) -> dict[str, Any]:
        if self.output_orient == "records":
            schema: dict[str, Any] = {
                "type": "array",
                "items": {"type": "object", "additionalProperties": True},
                "description": "rows (records); NaN cells are null",
            }
        else:
            schema = {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {}},
                "description": "columns: column name -> values; NaN cells are null",
            }
        return {
            _JSON: {"schema": schema},
            _CSV: {"schema": {"type": "string", "description": "CSV with a header row (Accept: text/csv)"}},
        }


def _as_frame(result: Any) -> Any:
    import pandas as pd

    if isinstance(result, pd.DataFrame):
        return result
    if isinstance(result, pd.Series):
        return result.to_frame()
    try:
        return pd.DataFrame(result)
    except (TypeError, ValueError) as exc:
        raise InferenceError(
            f"DataframeOutput cannot make a table of a {type(result).__name__} result", detail=str(exc)
        ) from exc


def negotiate(accept: str, offered: tuple[str, ...]) -> str:
    """The type of ``offered`` an ``Accept`` header prefers: the highest quality (``q``), the one
    offered first on a tie or when there is no header. Each offered type takes the quality of the
    most specific range matching it (``text/csv`` over ``text/*`` over ``*/*``), so
    ``*/*, text/csv;q=0`` refuses CSV. :class:`NotAcceptable` when none is acceptable."""
    if not accept.strip():
        return offered[0]
    ranges = []
    for item in accept.split(","):
        media, _, params = item.partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 1.0  # a malformed q is ignored rather than refusing the type
                if not 0.0 <= q <= 1.0:
                    q = 1.0
        ranges.append((media.strip().lower(), q))
    best, best_q = None, 0.0
    for kind in offered:
        family = kind.split("/")[0] + "/*"
        matches = [(m == kind, m == family, q) for m, q in ranges if m in (kind, family, "*/*")]
        q = max(matches)[2] if matches else 0.0
        if q > best_q:
            best, best_q = kind, q
    if best is None:
        raise NotAcceptable(
            f"the request's Accept header ({accept[:100]}) allows none of the types this API answers in",
            detail=f"accept one of: {', '.join(offered)}",
        )
    return best
