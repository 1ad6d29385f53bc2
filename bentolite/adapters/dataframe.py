"""``DataframeInput``: tabular input as a pandas DataFrame (JSON records/columns, or CSV)."""

from __future__ import annotations

import io
from typing import Any

from bentolite.adapters.base import (
    Adapter,
    HttpRequest,
    load_json_body,
    split_rows,
)
from bentolite.exceptions import BadInput, InvalidArgument

_ORIENTS = ("records", "columns")


class DataframeInput(Adapter):
    """A pandas DataFrame.

    Over HTTP it accepts ``application/json`` (a list of row objects or row lists = records, or
    an object of column name -> list of values = columns; ``orient=None`` detects which) and
    ``text/csv`` with a header row. ``columns`` names the expected columns: a request missing one
    is a 400, and the frame handed to the function has exactly those columns in that order.
    Batched calls concatenate the requests' rows; the function returns one result per row.
    """

    accepts = ("application/json", "text/csv")

    def __init__(
        self,
        orient: str | None = None,
        columns: list[str] | None = None,
        dtype: str | dict[str, str] | None = None,
    ) -> None:
        if orient is not None and orient not in _ORIENTS:
            raise InvalidArgument(
                f"DataframeInput(orient={orient!r}) is not supported; use one of {_ORIENTS} or None"
            )
        self.orient = orient
        self.columns = list(columns) if columns is not None else None
        self.dtype = dtype

    def options(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in {"orient": self.orient, "columns": self.columns, "dtype": self.dtype}.items()
            if v is not None
        }

    def _finish(self, df: Any) -> Any:
        if self.columns is not None:
            missing = [c for c in self.columns if c not in df.columns]
            if (
                missing
                and list(df.columns) == list(range(len(df.columns)))
                and len(df.columns) == len(self.columns)
            ):
                df.columns = self.columns
                missing = []
            if missing:
                raise BadInput(
                    f"input is missing column(s) {', '.join(map(str, missing))}; "
                    f"expected columns {self.columns}"
                )
            df = df[self.columns]
        if self.dtype is not None:
            try:
                df = df.astype(self.dtype)
            except (TypeError, ValueError) as exc:
                raise BadInput(f"input cannot be converted to dtype {self.dtype}", detail=str(exc)) from exc
        return df

    def from_direct(self, value: Any) -> Any:
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            return self._finish(value)
        return self._from_obj(value)

    def _from_obj(self, obj: Any) -> Any:
        import pandas as pd

        orient = self.orient
        if orient is None:
            orient = "columns" if isinstance(obj, dict) else "records"
        try:
            if orient == "columns":
                if not isinstance(obj, dict):
                    raise BadInput("expected a JSON object of column name -> list of values")
                df = pd.DataFrame(obj)
            else:
                if not isinstance(obj, list) and not hasattr(obj, "shape"):
                    raise BadInput("expected a JSON list of rows (objects or lists)")
                df = pd.DataFrame(obj)
        except (TypeError, ValueError) as exc:
            raise BadInput("input cannot be read as a table", detail=str(exc)) from exc
        return self._finish(df)

    def from_http(self, request: HttpRequest) -> Any:
        self.check_media_type(request)
        if request.media_type == "text/csv":
            import pandas as pd

            try:
                text = request.body.decode(request.params.get("charset", "utf-8"))
                df = pd.read_csv(io.StringIO(text))
            except (UnicodeDecodeError, LookupError, ValueError) as exc:
                raise BadInput("request body is not valid CSV", detail=str(exc)) from exc
            return self._finish(df)
        return self._from_obj(load_json_body(request))

    def merge(self, payloads: list[Any]) -> tuple[Any, list[int]]:
        import pandas as pd

        return pd.concat(payloads, ignore_index=True), [len(p) for p in payloads]

    def batch_size(self, payload: Any) -> int:
        return len(payload)

    def split(self, result: Any, sizes: list[int]) -> list[Any]:
        return split_rows(result, sizes)

    def openapi_request(self) -> dict[str, Any]:
        row: dict[str, Any] = {"type": "object"}
        if self.columns:
            row["properties"] = {str(c): {} for c in self.columns}
            row["required"] = [str(c) for c in self.columns]
        return {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"type": "array", "items": row, "description": "rows (records)"},
                        {
                            "type": "object",
                            "additionalProperties": {"type": "array"},
                            "description": "columns",
                        },
                    ]
                }
            },
            "text/csv": {"schema": {"type": "string", "description": "CSV with a header row"}},
        }

    def openapi_response(self) -> dict[str, Any]:
        return {"application/json": {"schema": {"type": "array", "items": {}}}}
