"""``DataframeInput``: tabular input as a pandas DataFrame (JSON records/columns, or CSV)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bentolite.adapters import table
from bentolite.adapters.base import Adapter, HttpRequest, load_json_body, split_rows
from bentolite.exceptions import BadInput, InvalidArgument

if TYPE_CHECKING:
    from bentolite.adapters.cells import CellType

_ORIENTS = ("records", "columns")


class DataframeInput(Adapter):
    """A pandas DataFrame.

    Over HTTP it accepts ``application/json`` (a list of row objects or row lists = records, or
    an object of column name -> list of values = columns; ``orient=None`` detects which) and
    ``text/csv`` with a header row.

    Nothing is guessed: every row must have as many values as the header, the declared columns
    or the first row, and each column holds one type of single values (numbers, strings or
    booleans). ``columns`` names the expected columns: a request missing one is a 400 naming it,
    and the frame handed to the function has exactly those columns in that order. ``dtype`` (one
    dtype, or column -> dtype) converts each column strictly: a cell that does not convert is a
    400 naming its row and column. Missing values (``null``, an empty CSV field) and the
    non-standard ``NaN``/``Infinity`` are refused unless ``allow_nan=True``, which reads them as
    NaN. Batched calls concatenate the requests' rows; the function returns one result per row.
    """

    accepts = ("application/json", "text/csv")

    def __init__(
        self,
        orient: str | None = None,
        columns: list[str] | None = None,
        dtype: str | dict[str, str] | None = None,
        *,
        allow_nan: bool = False,
        example: Any = None,
    ) -> None:
        super().__init__(example=example)
        if orient is not None and orient not in _ORIENTS:
            raise InvalidArgument(
                f"DataframeInput(orient={orient!r}) is not supported; use one of {_ORIENTS} or None"
            )
        self.orient = orient
        self.columns = list(columns) if columns is not None else None
        if self.columns is not None:
            if not self.columns:
                raise InvalidArgument("DataframeInput(columns=[]) names no column")
            repeated = sorted({str(c) for c in self.columns if self.columns.count(c) > 1})
            if repeated:
                raise InvalidArgument(f"DataframeInput(columns=...) names {', '.join(repeated)} twice")
        self.dtype = dtype
        self.allow_nan = bool(allow_nan)
        self._types = self._cell_types(dtype)
        self._index: Any = None  # the columns' pandas Index, made once

    def _cell_types(self, dtype: Any) -> dict[Any, CellType] | CellType | None:
        if dtype is None:
            return None
        from bentolite.adapters import cells  # numpy, only once a dtype is declared

        try:
            if not isinstance(dtype, dict):
                return cells.CellType(dtype)
            unknown = [c for c in dtype if self.columns is not None and c not in self.columns]
            if unknown:
                raise InvalidArgument(
                    f"DataframeInput(dtype=...) names column(s) {', '.join(map(repr, unknown))}, which "
                    f"columns={self.columns} does not"
                )
            return {c: cells.CellType(t) for c, t in dtype.items()}
        except InvalidArgument as exc:
            raise InvalidArgument(f"DataframeInput(dtype={dtype!r}): {exc.message}") from None

    def options(self) -> dict[str, Any]:
        opts = {
            k: v
            for k, v in {"orient": self.orient, "columns": self.columns, "dtype": self.dtype}.items()
            if v is not None
        }
        if self.allow_nan:
            opts["allow_nan"] = True
        return opts

    def cell_type(self, column: Any) -> CellType | None:
        """The declared type of ``column``'s cells, or None when the cells choose."""
        if isinstance(self._types, dict):
            return self._types.get(column)
        return self._types

    # --- conversions ---------------------------------------------------------------------------
    def _frame(self, tab: table.Table, from_csv: bool = False) -> Any:
        import pandas as pd

        from bentolite.adapters import cells

        data = {}
        for name, values in tab.columns.items():
            ctype = self.cell_type(name)

            def where(i: int, name: Any = name) -> str:
                return f"{tab.row_label(i)}, column {name!r}"

            if from_csv:
                values = cells.from_csv(values, ctype, allow_nan=self.allow_nan, where=where)
            data[name] = cells.to_array(values, ctype, allow_nan=self.allow_nan, where=where)
        df = pd.DataFrame(data)
        for name in data:
            ctype = self.cell_type(name)
            if ctype is not None and ctype.kind == "other":
                try:
                    df[name] = df[name].astype(ctype.dtype)
                except (TypeError, ValueError) as exc:
                    raise BadInput(
                        f"column {name!r} cannot be read as {ctype.name}", detail=str(exc)
                    ) from exc
        return df

    def from_direct(self, value: Any) -> Any:
        import pandas as pd

        if not isinstance(value, pd.DataFrame):
            return self._from_obj(value)
        if self.columns is None and self._types is None:
            return value
        if self.columns is not None and _positional(value, len(self.columns)):
            # a frame built from rows without names (pd.DataFrame(rows)): its columns are the
            # declared ones in order, as for a JSON list of rows
            value = value.set_axis(self.columns, axis=1)
        names = self.columns if self.columns is not None else list(value.columns)
        missing = [c for c in names if c not in value.columns]
        if missing:
            raise BadInput(f"the input is missing {table.column_names(missing)}")
        return self._frame(table.Table({c: value[c].tolist() for c in names}, len(value)))

    def _from_obj(self, obj: Any) -> Any:
        if hasattr(obj, "tolist") and not isinstance(obj, (list, dict)):
            obj = obj.tolist()  # a numpy array of rows, in a direct call
        if type(obj) is list and obj and self.orient != "columns":
            fast = self._number_rows(obj)
            if fast is not None:
                return fast
        return self._frame(table.from_json(obj, orient=self.orient, columns=self.columns))

    def _number_rows(self, rows: list[Any]) -> Any:
        """The common case in one step: rows of plain numbers (arrays of one width, or objects of
        the same keys) become one 2-D array. None when anything is off: the general path then
        names it."""
        import itertools
        import operator

        import numpy as np

        kinds = set(map(type, rows))
        names: list[Any] | None = self.columns
        if kinds == {dict}:
            if names is None:
                keys = rows[0].keys()
                if any(row.keys() != keys for row in rows):
                    return None
                names = list(keys)
            if not names:
                return None
            try:
                values = list(map(operator.itemgetter(*names), rows))
            except KeyError:
                return None
            rows = [[v] for v in values] if len(names) == 1 else values
        elif kinds != {list}:
            return None
        width = len(rows[0]) if names is None else len(names)
        if not width or set(map(len, rows)) != {width}:
            return None
        types = set(map(type, itertools.chain.from_iterable(rows)))
        declared = self._uniform_type()
        if declared is None:
            if self._types is not None or types == {int, float}:
                return None  # undeclared columns of ints beside floats: each column chooses
            dtype = np.dtype("int64") if types == {int} else np.dtype("float64")
        elif declared.kind == "float" or (declared.kind == "int" and types == {int}):
            dtype = declared.dtype
        else:
            return None
        if not types <= {int, float}:
            return None
        try:
            with np.errstate(over="ignore"):
                array = np.array(rows, dtype=dtype)
        except OverflowError:  # an integer beyond the dtype
            return None
        if dtype.kind == "f" and not self.allow_nan and not np.isfinite(array).all():
            return None
        return self._frame_of(array, names, width)

    def _uniform_type(self) -> CellType | None:
        """The one declared type of every column, if there is one."""
        if isinstance(self._types, dict):
            if self.columns is None:
                return None
            found = {self._types.get(c) for c in self.columns}
            only = found.pop() if len(found) == 1 else None
            return only
        return self._types

    def _frame_of(self, array: Any, names: list[Any] | None, width: int) -> Any:
        import pandas as pd

        if names is not None and names is not self.columns:
            return pd.DataFrame(array, columns=pd.Index(names), copy=False)
        if self._index is None or len(self._index) != width:
            self._index = pd.Index(self.columns) if self.columns is not None else pd.RangeIndex(width)
        return pd.DataFrame(array, columns=self._index, copy=False)

    def from_http(self, request: HttpRequest) -> Any:
        self.check_media_type(request)
        if request.media_type == "text/csv":
            charset = request.params.get("charset", "utf-8")
            try:
                text = request.body.decode("utf-8-sig" if charset.lower() in ("utf-8", "utf8") else charset)
            except (UnicodeDecodeError, LookupError) as exc:
                raise BadInput(f"the CSV body is not valid {charset} text", detail=str(exc)) from exc
            return self._frame(table.from_csv(text, columns=self.columns), from_csv=True)
        return self._from_obj(load_json_body(request, allow_nan=self.allow_nan))

    # --- batching ------------------------------------------------------------------------------
    def merge(self, payloads: list[Any]) -> tuple[Any, list[int]]:
        import pandas as pd

        first = payloads[0]
        for payload in payloads[1:]:
            # frames of other columns or types would merge into NaN-filled or upcast columns:
            # such payloads are called one by one instead
            if list(payload.columns) != list(first.columns) or not payload.dtypes.equals(first.dtypes):
                raise BadInput("the requests of this batch hold different columns or column types")
        return pd.concat(payloads, ignore_index=True), [len(p) for p in payloads]

    def batch_size(self, payload: Any) -> int:
        return len(payload)

    def split(self, result: Any, sizes: list[int]) -> list[Any]:
        return split_rows(result, sizes)

    # --- OpenAPI -------------------------------------------------------------------------------
    def openapi_request(self) -> dict[str, Any]:
        from bentolite.adapters.dataframe_schema import request_content

        return request_content(self)

    def derived_examples(self) -> dict[str, Any]:
        from bentolite.adapters.dataframe_schema import examples

        return examples(self)


def _positional(frame: Any, width: int) -> bool:
    """Whether ``frame``'s columns are the default ``0..n-1`` of a frame built without names."""
    return frame.shape[1] == width and list(frame.columns) == list(range(width))
