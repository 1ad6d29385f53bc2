"""The OpenAPI request schema and example of a ``DataframeInput``, from its declaration.

Each cell is typed from the declared ``dtype`` (a number, an integer in range, a boolean, a
string); undeclared cells are "a number, a string or a boolean", which is what the parser
accepts. The three body forms are described: rows as objects or as arrays of values (in the
declared column order), and columns; and CSV with a header row.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bentolite.adapters.dataframe import DataframeInput

_ANY_CELL: dict[str, Any] = {
    "anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}],
    "description": "a number, a string or a boolean; one type per column",
}


def _named_columns(adapter: DataframeInput) -> list[Any] | None:
    if adapter.columns is not None:
        return adapter.columns
    if isinstance(adapter.dtype, dict):
        return list(adapter.dtype)
    return None


def _cell(adapter: DataframeInput, column: Any) -> dict[str, Any]:
    ctype = adapter.cell_type(column)
    schema = dict(ctype.json_schema()) if ctype is not None else dict(_ANY_CELL)
    if adapter.allow_nan and schema.get("type") in ("number", None):
        schema["nullable"] = True
    return schema


def _same_cell(adapter: DataframeInput, columns: list[Any] | None) -> dict[str, Any]:
    """One schema for a cell of any column (the items of a row given as an array)."""
    schemas = [_cell(adapter, c) for c in columns] if columns else [_cell(adapter, None)]
    distinct = [s for i, s in enumerate(schemas) if s not in schemas[:i]]
    return distinct[0] if len(distinct) == 1 else {"anyOf": distinct}


def request_content(adapter: DataframeInput) -> dict[str, Any]:
    """``requestBody.content`` of a DataframeInput API."""
    named = _named_columns(adapter)
    declared = adapter.columns
    order = ", ".join(map(str, declared)) if declared else ""
    if named:
        row_object: dict[str, Any] = {
            "type": "object",
            "properties": {str(c): _cell(adapter, c) for c in named},
            "description": "one row: column name -> value",
        }
        if declared:
            row_object["required"] = [str(c) for c in declared]
            row_object["description"] += " (other keys are ignored)"
    else:
        row_object = {
            "type": "object",
            "additionalProperties": _cell(adapter, None),
            "minProperties": 1,
            "description": "one row: column name -> value; every row has the same columns",
        }
    row_array: dict[str, Any] = {"type": "array", "items": _same_cell(adapter, declared), "minItems": 1}
    if declared:
        row_array.update(minItems=len(declared), maxItems=len(declared))
        row_array["description"] = f"one row: its values in column order ({order})"
    else:
        row_array["description"] = "one row: its values; every row has as many"
    if named:
        columns_form: dict[str, Any] = {
            "type": "object",
            "properties": {
                str(c): {"type": "array", "items": _cell(adapter, c), "minItems": 1} for c in named
            },
            "description": "columns: column name -> its values, one per row",
        }
        if declared:
            columns_form["required"] = [str(c) for c in declared]
    else:
        columns_form = {
            "type": "object",
            "additionalProperties": {"type": "array", "items": _cell(adapter, None), "minItems": 1},
            "minProperties": 1,
            "description": "columns: column name -> its values, one per row",
        }
    # rows as objects or as arrays are one array schema whose items take either form: code
    # generators then type the body as a list of (row model | list of values)
    records = {
        "type": "array",
        "items": {"oneOf": [row_object, row_array]},
        "minItems": 1,
        "description": "rows: each an object of column -> value, or an array of values (all alike)",
    }
    forms = []
    if adapter.orient in (None, "records"):
        forms.append(records)
    if adapter.orient in (None, "columns"):
        forms.append(columns_form)
    header = f" ({','.join(map(str, declared))})" if declared else ""
    return {
        "application/json": {"schema": forms[0] if len(forms) == 1 else {"oneOf": forms}},
        "text/csv": {
            "schema": {
                "type": "string",
                "description": f"CSV: a header row naming the columns{header}, then one line per row",
            }
        },
    }


def examples(adapter: DataframeInput) -> dict[str, Any]:
    """One example row in the records form (and as CSV), when the columns are known."""
    named = _named_columns(adapter)
    if not named:
        return {}
    row = {str(c): _example_value(adapter, c) for c in named}
    if adapter.orient == "columns":
        body: Any = {name: [value] for name, value in row.items()}
    else:
        body = [row]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(row)
    writer.writerow(row.values())
    return {"application/json": body, "text/csv": out.getvalue()}


def _example_value(adapter: DataframeInput, column: Any) -> Any:
    ctype = adapter.cell_type(column)
    return ctype.example() if ctype is not None else 0.0
