"""Rows and columns of a table, read from its JSON or CSV form without guessing.

:func:`from_json` reads records (``[{"a": 1}, ...]`` or ``[[1, 2], ...]``) and columns
(``{"a": [1, ...]}``); :func:`from_csv` reads CSV with a header row. Both hand back a
:class:`Table`: named columns of raw cells, every column as long as the table has rows. A row
with more or fewer fields than the header, the declared columns or the first row is refused
naming the row; so is a missing column, naming only the columns that are missing, and a table
with no rows. Rows are counted from 0, as the DataFrame's index counts them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any, Callable

import attrs

from bentolite.exceptions import BadInput


@attrs.frozen
class Table:
    """Named columns of raw cells (JSON values, or CSV strings), in column order."""

    columns: dict[Any, Sequence[Any]]
    n_rows: int
    #: ``row_label(i)`` names row ``i`` in an error message (``"row 3"``, ``"row 3 (line 5)"``)
    row_label: Callable[[int], str] = attrs.field(default=lambda i: f"row {i}")


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _names(names: Sequence[Any]) -> str:
    return ", ".join(repr(n) for n in names)


def column_names(names: Sequence[Any]) -> str:
    """``column 'a'`` or ``columns 'a', 'b'``."""
    return f"column{'s' if len(names) > 1 else ''} {_names(names)}"


# --- JSON ---------------------------------------------------------------------------------------
def from_json(obj: Any, *, orient: str | None, columns: list[str] | None) -> Table:
    """A table from a parsed JSON body; ``orient`` is "records", "columns" or None (by shape)."""
    if orient is None:
        orient = "columns" if isinstance(obj, dict) else "records"
    if orient == "columns":
        if not isinstance(obj, dict):
            raise BadInput(f"expected a JSON object of column name -> array of values, got {_kind(obj)}")
        return _from_columns(obj, columns)
    if not isinstance(obj, list):
        raise BadInput(
            f"expected a JSON array of rows (each an array of values or an object), got {_kind(obj)}"
        )
    return _from_records(obj, columns)


def _from_records(rows: list[Any], declared: list[str] | None) -> Table:
    if not rows:
        raise BadInput("the input holds no rows")
    types = set(map(type, rows))
    if types == {list}:
        return _from_value_rows(rows, declared)
    if types == {dict}:
        return _from_object_rows(rows, declared)
    first = _kind(rows[0])
    for i, row in enumerate(rows):
        if not isinstance(row, (list, dict)):
            raise BadInput(
                f"row {i} is {_kind(row)}; send each row as an array of values or an object of "
                "column -> value (one row: [[...]])"
            )
        if _kind(row) != first:
            raise BadInput(f"row {i} is {_kind(row)}, but row 0 is {first}; send every row the same way")
    raise AssertionError("unreachable")  # pragma: no cover


def _from_value_rows(rows: list[list[Any]], declared: list[str] | None) -> Table:
    width = len(declared) if declared is not None else len(rows[0])
    if set(map(len, rows)) != {width}:
        i, row = next((i, r) for i, r in enumerate(rows) if len(r) != width)
        if declared is not None:
            raise BadInput(f"row {i} has {len(row)} values; expected {width} ({_names(declared)})")
        raise BadInput(f"row {i} has {len(row)} values, but row 0 has {width}")
    if width == 0:
        raise BadInput("the rows hold no values")
    names = declared if declared is not None else list(range(width))
    return Table(dict(zip(names, zip(*rows))), len(rows))


def _from_object_rows(rows: list[dict[str, Any]], declared: list[str] | None) -> Table:
    if declared is None:
        keys = rows[0].keys()
        if not keys:
            raise BadInput("row 0 holds no values")
        for i, row in enumerate(rows):
            if row.keys() != keys:
                missing = [k for k in keys if k not in row]
                if missing:
                    raise BadInput(f"row {i} is missing {column_names(missing)}, which row 0 has")
                extra = [k for k in row if k not in keys]
                raise BadInput(f"row {i} has {column_names(extra)}, which row 0 does not")
        names: list[Any] = list(keys)
    else:
        names = declared
        for i, row in enumerate(rows):
            if len(row) < len(declared) or any(c not in row for c in declared):
                missing = [c for c in declared if c not in row]
                if missing:
                    raise BadInput(f"row {i} is missing {column_names(missing)}")
    return Table({name: [row[name] for row in rows] for name in names}, len(rows))


def _from_columns(obj: dict[str, Any], declared: list[str] | None) -> Table:
    if declared is not None:
        missing = [c for c in declared if c not in obj]
        if missing:
            raise BadInput(f"the input is missing {column_names(missing)}")
    if not obj:
        raise BadInput("the input holds no columns")
    # every column sent, declared or not, is checked: columns of different lengths are no table,
    # and which of them is right cannot be known
    length = None
    first = None
    for name, values in obj.items():
        if not isinstance(values, list):
            raise BadInput(
                f"column {name!r} is {_kind(values)}, not an array of values (one per row); "
                "to send one row, send [{...}]"
            )
        if length is None:
            length, first = len(values), name
        elif len(values) != length:
            raise BadInput(f"column {name!r} has {len(values)} values, but column {first!r} has {length}")
    if not length:
        raise BadInput("the input holds no rows")
    if declared is not None:
        obj = {c: obj[c] for c in declared}
    return Table(dict(obj), length)


# --- CSV ----------------------------------------------------------------------------------------
def from_csv(text: str, *, columns: list[str] | None) -> Table:
    """A table from CSV text whose first row names the columns. Fields stay strings."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next((row for row in reader if row), None)
        if header is None:
            raise BadInput("the CSV body is empty; expected a header row naming the columns, then rows")
        seen: set[str] = set()
        for position, name in enumerate(header):
            if not name.strip():
                raise BadInput(f"the CSV header's field {position} is empty; name every column")
            if name in seen:
                raise BadInput(f"the CSV header names column {name!r} twice")
            seen.add(name)
        rows, lines = [], []
        for row in reader:
            if not row:
                continue  # a blank line
            if len(row) != len(header):
                raise BadInput(
                    f"row {len(rows)} (line {reader.line_num}) has {len(row)} fields; "
                    f"the header has {len(header)} ({_names(header)})"
                )
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise BadInput(f"the request body is not valid CSV (line {reader.line_num}): {exc}") from exc
    if not rows:
        raise BadInput("the CSV has a header but no rows")
    names = header
    if columns is not None:
        missing = [c for c in columns if c not in seen]
        if missing:
            raise BadInput(f"the CSV header is missing {column_names(missing)}")
        names = columns
    positions = {name: position for position, name in enumerate(header)}
    transposed = list(zip(*rows))
    return Table(
        {name: transposed[positions[name]] for name in names},
        len(rows),
        lambda i: f"row {i} (line {lines[i]})",
    )
