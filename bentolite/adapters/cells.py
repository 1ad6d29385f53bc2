"""Strict conversion of the cells of a column (or of an array) to one numpy dtype.

Adapters never let numpy or pandas guess: ``"1.5"`` is not a number, ``true`` is not ``1``,
``1.7`` is not the integer ``1``, ``1e300`` does not fit a float32, a missing value (``null``, an
empty CSV cell) is refused unless the adapter allows it. Every refusal is a
:class:`~bentolite.exceptions.BadInput` naming the cell (``row 3, column 'sepal_width': 'x' is
not a number``).

A :class:`CellType` is what a declared dtype asks of each cell; it also gives the JSON schema of
a cell and an example value, so the OpenAPI document says what the parser accepts.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

import numpy as np

from bentolite.exceptions import BadInput, InvalidArgument

#: what a dtype asks of a cell: a number, an integer, a boolean, a string, any JSON value, or
#: (for dtypes only pandas knows, such as "category") a plain value pandas then converts
KINDS = ("float", "int", "bool", "str", "any", "other")

_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INT_RE = re.compile(r"[+-]?\d+")
_NON_FINITE_WORDS = {"nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
_BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False}
_NUMBER_TYPES = (int, float, np.integer, np.floating)
_BOOL_TYPES = (bool, np.bool_)

#: ``where(i)`` names cell ``i`` for an error message (``"row 3, column 'a'"``)
Where = Callable[[int], str]


class CellType:
    """The cells a declared dtype accepts. ``dtype`` is a numpy dtype, or a pandas dtype name."""

    def __init__(self, dtype: Any) -> None:
        self.declared = dtype
        try:
            self.dtype: Any = np.dtype(dtype)
        except TypeError:
            self.dtype = _pandas_dtype(dtype)
        self.kind = _kind(self.dtype)

    @property
    def name(self) -> str:
        return str(self.dtype)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CellType) and self.dtype == other.dtype

    def __hash__(self) -> int:
        return hash(str(self.dtype))

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of one cell."""
        if self.kind == "float":
            return {"type": "number", "format": "float" if self.dtype.itemsize <= 4 else "double"}
        if self.kind == "int":
            info = np.iinfo(self.dtype)
            schema: dict[str, Any] = {"type": "integer", "format": "int32" if info.bits <= 32 else "int64"}
            if info.bits < 64:
                schema.update(minimum=int(info.min), maximum=int(info.max))
            elif info.min == 0:
                schema["minimum"] = 0
            return schema
        if self.kind == "bool":
            return {"type": "boolean"}
        if self.kind == "str":
            return {"type": "string"}
        return {}

    def example(self) -> Any:
        """A value every cell of this type may hold."""
        return {"float": 0.0, "int": 0, "bool": False, "str": "text"}.get(self.kind, 0)


def _pandas_dtype(dtype: Any) -> Any:
    import pandas as pd

    try:
        return pd.api.types.pandas_dtype(dtype)
    except TypeError as exc:
        raise InvalidArgument(f"dtype {dtype!r} is neither a numpy nor a pandas dtype") from exc


def _kind(dtype: Any) -> str:
    if not isinstance(dtype, np.dtype):
        return "other"
    return {"f": "float", "i": "int", "u": "int", "b": "bool", "U": "str", "S": "str", "O": "any"}.get(
        dtype.kind, "other"
    )


# --- JSON cells ---------------------------------------------------------------------------------
def to_array(values: list[Any], ctype: CellType | None, *, allow_nan: bool, where: Where) -> np.ndarray:
    """Cells (Python values from JSON, or a direct call) -> a 1-D array of ``ctype``'s dtype.

    With no ``ctype`` the cells choose: all integers make int64, numbers float64, booleans bool,
    strings an object array of ``str``; a column mixing them is refused.
    """
    kind = ctype.kind if ctype is not None else infer_kind(values, allow_nan=allow_nan, where=where)
    if kind == "float":
        return _floats(values, ctype.dtype if ctype else np.dtype("float64"), allow_nan, where)
    if kind == "int":
        return _ints(values, ctype.dtype if ctype else np.dtype("int64"), allow_nan, where)
    if kind == "bool":
        if not set(map(type, values)) <= {bool}:
            _require(values, _is_bool, "a boolean (true or false)", allow_nan, where)
        return _objects(values) if None in values else np.array(values, dtype=bool)
    if kind == "str":
        if not set(map(type, values)) <= {str}:
            _require(values, _is_str, "a string", allow_nan, where)
        return _objects(values)
    if kind == "other":  # the caller converts with pandas; cells are still single values
        _require(values, _is_single, "a single value (cells hold no arrays or objects)", True, where)
    return _objects(values)


def infer_kind(values: list[Any], *, allow_nan: bool, where: Where) -> str:
    """The kind one column's cells share, or :class:`BadInput` at the first cell that differs."""
    types = set(map(type, values))
    if types <= {int}:
        return "int"
    if types <= {int, float}:
        return "float"
    first_kind, first_at = None, 0
    for i, value in enumerate(values):
        kind = _value_kind(value)
        if kind == "nested":
            raise BadInput(
                f"{where(i)}: {_show(value)} is not a single value (cells hold no arrays or objects)"
            )
        if kind == "null":
            continue
        if first_kind is None:
            first_kind, first_at = kind, i
        elif kind != first_kind and {kind, first_kind} != {"int", "float"}:
            raise BadInput(
                f"{where(i)}: {_show(value)} is {_KIND_WORDS[kind]}, but {where(first_at)} holds "
                f"{_KIND_WORDS[first_kind]}; a column holds one type"
            )
    if first_kind is None:  # every cell is null
        if not allow_nan:
            raise BadInput(f"{where(0)}: null is not a value; every cell needs one")
        return "float"
    if first_kind in ("int", "float"):
        return "int" if all(_value_kind(v) == "int" for v in values) else "float"
    return first_kind


_KIND_WORDS = {"int": "a number", "float": "a number", "bool": "a boolean", "str": "a string"}


def _value_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, _BOOL_TYPES):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    if isinstance(value, str):
        return "str"
    return "nested"


def _require(values: list[Any], ok: Callable[[Any], bool], what: str, allow_null: bool, where: Where) -> None:
    for i, value in enumerate(values):
        if not ok(value) and not (value is None and allow_null):
            raise BadInput(f"{where(i)}: {_show(value)} is not {what}")


def _is_bool(value: Any) -> bool:
    return isinstance(value, _BOOL_TYPES)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_single(value: Any) -> bool:
    return _value_kind(value) != "nested"


def _floats(values: list[Any], dtype: np.dtype, allow_nan: bool, where: Where) -> np.ndarray:
    if not set(map(type, values)) <= {int, float}:
        for i, value in enumerate(values):
            if value is None and allow_nan:
                continue
            if not isinstance(value, _NUMBER_TYPES) or isinstance(value, _BOOL_TYPES):
                raise BadInput(f"{where(i)}: {_show(value)} is not a number")
        values = [math.nan if v is None else v for v in values]
    try:
        if dtype.itemsize < 8:  # a narrower float may overflow: checked below, without a warning
            with np.errstate(over="ignore", invalid="ignore"):
                array = np.array(values, dtype=dtype)
        else:
            array = np.array(values, dtype=dtype)
    except OverflowError:  # an integer beyond any float
        for i, value in enumerate(values):
            try:
                float(value)
            except OverflowError:
                raise BadInput(f"{where(i)}: {_show(value)} is out of the range of {dtype.name}") from None
        raise
    if not allow_nan:
        finite = np.isfinite(array)
        if not finite.all():
            i = int(np.argmin(finite))
            raise BadInput(f"{where(i)}: {_show(values[i])} is out of the range of {dtype.name}")
    return array


def _ints(values: list[Any], dtype: np.dtype, allow_nan: bool, where: Where) -> np.ndarray:
    types = set(map(type, values))
    if not types <= {int}:
        for i, value in enumerate(values):
            if isinstance(value, (int, np.integer)) and not isinstance(value, _BOOL_TYPES):
                continue
            if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
                continue
            raise BadInput(f"{where(i)}: {_show(value)} is not an integer")
        values = [int(v) for v in values]
    info = np.iinfo(dtype)
    low, high = (min(values), max(values)) if values else (0, 0)
    if low < info.min or high > info.max:
        i = next(i for i, v in enumerate(values) if not info.min <= v <= info.max)
        raise BadInput(f"{where(i)}: {_show(values[i])} is out of the range of {dtype.name}")
    return np.array(values, dtype=dtype)


def _objects(values: list[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "...")
    if value is None:
        return "null"
    if isinstance(value, _BOOL_TYPES):
        return "true" if value else "false"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= 40 else text[:40] + "..."


# --- CSV cells ----------------------------------------------------------------------------------
def from_csv(cells: list[str], ctype: CellType | None, *, allow_nan: bool, where: Where) -> list[Any]:
    """CSV fields (strings) -> the Python values :func:`to_array` takes for ``ctype``.

    An empty field is a missing value (``None``). With no ``ctype``, a column whose fields are all
    numbers holds numbers, any other column strings.
    """
    kind = ctype.kind if ctype is not None else _csv_kind(cells, allow_nan)
    if kind in ("float", "int", "bool") and not allow_nan:
        for i, cell in enumerate(cells):
            if not cell.strip():
                what = {"float": "a number", "int": "an integer", "bool": "a boolean"}[kind]
                raise BadInput(f"{where(i)}: the field is empty; expected {what}")
    if kind == "float":
        return [_csv_float(c, i, allow_nan, where) for i, c in enumerate(cells)]
    if kind == "int":
        return [_csv_int(c, i, where) for i, c in enumerate(cells)]
    if kind == "bool":
        return [_csv_bool(c, i, where) for i, c in enumerate(cells)]
    return cells


def _csv_kind(cells: list[str], allow_nan: bool) -> str:
    present = [c.strip() for c in cells if c.strip()]
    if not present:
        return "str"
    if all(_INT_RE.fullmatch(c) for c in present):
        return "int"
    if all(_NUMBER_RE.fullmatch(c) or (allow_nan and c.lower() in _NON_FINITE_WORDS) for c in present):
        return "float"
    return "str"


def _csv_float(cell: str, i: int, allow_nan: bool, where: Where) -> float | None:
    text = cell.strip()
    if not text:
        return None
    if allow_nan and text.lower() in _NON_FINITE_WORDS:
        return float(text)
    if _NUMBER_RE.fullmatch(text):
        value = float(text)
        if math.isinf(value) and not allow_nan:
            raise BadInput(f"{where(i)}: {_show(cell)} is out of the range of a 64-bit float")
        return value
    raise BadInput(f"{where(i)}: {_show(cell)} is not a number")


def _csv_int(cell: str, i: int, where: Where) -> int | None:
    text = cell.strip()
    if not text:
        return None
    if _INT_RE.fullmatch(text):
        return int(text)
    if _NUMBER_RE.fullmatch(text):
        value = float(text)
        if math.isfinite(value) and value.is_integer():
            return int(value)
    raise BadInput(f"{where(i)}: {_show(cell)} is not an integer")


def _csv_bool(cell: str, i: int, where: Where) -> bool | None:
    text = cell.strip().lower()
    if not text:
        return None
    if text in _BOOL_WORDS:
        return _BOOL_WORDS[text]
    raise BadInput(f"{where(i)}: {_show(cell)} is not a boolean (true, false, 1 or 0)")
