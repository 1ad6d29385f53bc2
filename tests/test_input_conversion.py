"""Strict input conversion: DataframeInput (adapters/dataframe.py, table.py, cells.py) and
NdarrayInput refuse what does not convert, naming the row, column or item."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from bentolite.adapters import DataframeInput, HttpRequest, JsonInput, NdarrayInput
from bentolite.exceptions import BadInput, InvalidArgument

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
HEADER = ",".join(IRIS) + "\n"


def req(body, content_type="application/json"):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode() if content_type == "application/json" else body.encode()
    return HttpRequest.from_content_type(body, content_type)


def refused(adapter, body, content_type="application/json") -> str:
    with pytest.raises(BadInput) as caught:
        adapter.from_http(req(body, content_type))
    return caught.value.message


iris = DataframeInput(columns=IRIS, dtype="float64")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            [[5.1, 3.5, 1.4, 0.2], [1, 2, 3, 4], [1, 2, 3, 4], [1, "x", 3, 4]],
            "row 3, column 'sepal_width': 'x' is not a number",
        ),
        (
            [[1, 2, 3]],
            "row 0 has 3 values; expected 4 ('sepal_length', 'sepal_width', 'petal_length', 'petal_width')",
        ),
        ([[1, 2, 3, 4], [1, 2, 3, 4, 5]], "row 1 has 5 values; expected 4"),
        ([dict(zip(IRIS[:3], [1, 2, 3]))], "row 0 is missing column 'petal_width'"),
        (
            {"sepal_length": [1], "petal_width": [2]},
            "the input is missing columns 'sepal_width', 'petal_length'",
        ),
        ([[1, None, 3, 4]], "row 0, column 'sepal_width': null is not a number"),
        ([[1, 2, [3], 4]], "row 0, column 'petal_length': an array is not a number"),
        ([[1, 2, 3, {"v": 4}]], "row 0, column 'petal_width': an object is not a number"),
        ([[True, 2, 3, 4]], "row 0, column 'sepal_length': true is not a number"),
        ([[1, 2, 3, 10**400]], "row 0, column 'petal_width': 1000000000"),
        (b"[[1, NaN, 3, 4]]", "holds NaN, which is not JSON"),
        (b"[[1, 2, Infinity, 4]]", "holds Infinity"),
        (b"[[1, 2, 3, 1e400]]", "number 1e400 is out of the range"),
        ([], "the input holds no rows"),
        ([1, 2, 3, 4], "row 0 is a number; send each row as an array of values or an object"),
        ([[1, 2, 3, 4], dict(zip(IRIS, [1, 2, 3, 4]))], "row 1 is an object, but row 0 is an array"),
        ("text", "expected a JSON array of rows"),
    ],
)
def test_iris_json_refusals_name_the_row_and_column(body, message):
    assert message in refused(iris, body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (HEADER, "the CSV has a header but no rows"),
        ("", "the CSV body is empty"),
        (HEADER + "1,2,3,4\n0,1,2,3,4\n", "row 1 (line 3) has 5 fields; the header has 4"),
        (HEADER + "1,2,3\n", "row 0 (line 2) has 3 fields; the header has 4"),
        (HEADER + "1,2,3,4\n1,x,3,4\n", "row 1 (line 3), column 'sepal_width': 'x' is not a number"),
        (HEADER + "1,,3,4\n", "row 0 (line 2), column 'sepal_width': the field is empty; expected a number"),
        (HEADER + "1,nan,3,4\n", "'nan' is not a number"),
        (HEADER + "1,inf,3,4\n", "'inf' is not a number"),
        (HEADER + "1,1_000,3,4\n", "'1_000' is not a number"),
        (HEADER + "1,1e400,3,4\n", "'1e400' is out of the range of a 64-bit float"),
        ("sepal_length,sepal_width,petal_length\n1,2,3\n", "the CSV header is missing column 'petal_width'"),
        ("a,a\n1,2\n", "the CSV header names column 'a' twice"),
        ('a,b\n"1,2\n', "not valid CSV"),
    ],
)
def test_iris_csv_refusals_name_the_row_and_column(body, message):
    assert message in refused(iris, body, "text/csv")


def test_extra_leading_csv_fields_are_never_an_index():
    """pandas would read 5 fields under a 4-column header as an index plus 4 columns."""
    plain = DataframeInput()
    assert "row 0 (line 2) has 5 fields; the header has 4" in refused(
        plain, "a,b,c,d\n9,1,2,3,4\n", "text/csv"
    )


def test_the_three_json_forms_and_csv_give_one_frame():
    rows = [[5.1, 3.5, 1.4, 0.2], [6.5, 3.0, 5.8, 2.2]]
    forms = [
        (rows, "application/json"),
        ([dict(zip(IRIS, r)) for r in rows], "application/json"),
        ({c: [r[i] for r in rows] for i, c in enumerate(IRIS)}, "application/json"),
        (HEADER + "\n".join(",".join(map(str, r)) for r in rows) + "\n", "text/csv"),
        ("\ufeff" + HEADER + "\r\n".join(",".join(map(str, r)) for r in rows), "text/csv"),
    ]
    for body, content_type in forms:
        df = iris.from_http(req(body, content_type))
        assert list(df.columns) == IRIS and df.dtypes.tolist() == [np.float64] * 4
        assert df.to_numpy().tolist() == rows


def test_extra_named_fields_are_dropped_and_columns_ordered():
    df = iris.from_http(req([{**dict(zip(reversed(IRIS), [4, 3, 2, 1])), "extra": "x"}]))
    assert list(df.columns) == IRIS and df.iloc[0].tolist() == [1, 2, 3, 4]
    df = iris.from_http(req("extra," + ",".join(reversed(IRIS)) + "\nx,4,3,2,1\n", "text/csv"))
    assert list(df.columns) == IRIS and df.iloc[0].tolist() == [1, 2, 3, 4]


def test_every_column_sent_must_be_as_long_as_the_others():
    """An undeclared column is dropped, but still part of the table sent: one of another length
    means the columns do not line up, so the request is refused rather than half read."""
    columns = {c: [float(i)] for i, c in enumerate(IRIS)}
    assert iris.from_http(req({**columns, "extra": ["x"]})).iloc[0].tolist() == [0.0, 1.0, 2.0, 3.0]
    message = refused(iris, {**columns, "extra": []})
    assert "column 'extra' has 0 values, but column 'sepal_length' has 1" in message
    assert "column 'extra' is a string, not an array of values" in refused(iris, {**columns, "extra": "x"})


def test_undeclared_columns_take_one_type_each():
    plain = DataframeInput()
    df = plain.from_http(req([{"n": 1, "s": "a", "b": True}, {"n": 2, "s": "b", "b": False}]))
    assert df["n"].dtype == np.int64 and df["b"].dtype == bool and df["s"].tolist() == ["a", "b"]
    assert plain.from_http(req([[1], [2.5]]))[0].dtype == np.float64
    mixed = plain.from_http(req([[1, 2.5], [2, 3.0]]))  # each column by its own cells
    assert mixed.dtypes.tolist() == [np.int64, np.float64]
    assert plain.from_http(req([{"n": 1, "x": 0.5}])).dtypes.tolist() == [np.int64, np.float64]
    assert "row 1, column 's': 2 is a number, but row 0, column 's' holds a string" in refused(
        plain, [{"s": "a"}, {"s": 2}]
    )
    assert "row 1 is missing column 'b', which row 0 has" in refused(plain, [{"a": 1, "b": 2}, {"a": 1}])
    assert "row 1 has column 'c', which row 0 does not" in refused(plain, [{"a": 1}, {"a": 1, "c": 2}])
    assert "row 1 has 1 values, but row 0 has 2" in refused(plain, [[1, 2], [3]])
    assert "column 'b' has 1 values, but column 'a' has 2" in refused(plain, {"a": [1, 2], "b": [3]})
    assert "column 'a' is a number, not an array of values" in refused(plain, {"a": 1})
    csv = plain.from_http(req("id,name\n1,x\n2,12\n", "text/csv"))
    assert csv["id"].tolist() == [1, 2] and csv["name"].tolist() == ["x", "12"]


@pytest.mark.parametrize(
    ("dtype", "good", "bad", "message"),
    [
        ("int64", [[1], [2.0]], [[1.5]], "row 0, column 'v': 1.5 is not an integer"),
        ("uint8", [[255]], [[256]], "row 0, column 'v': 256 is out of the range of uint8"),
        ("int8", [[-128]], [[-129]], "-129 is out of the range of int8"),
        ("float32", [[1.5]], [[1e39]], "row 0, column 'v': 1e+39 is out of the range of float32"),
        ("bool", [[True]], [[1]], "row 0, column 'v': 1 is not a boolean"),
        ("str", [["a"]], [[1]], "row 0, column 'v': 1 is not a string"),
        ("str", [["a"]], [[None]], "row 0, column 'v': null is not a string"),
    ],
)
def test_declared_dtypes_convert_strictly(dtype, good, bad, message):
    adapter = DataframeInput(columns=["v"], dtype=dtype)
    assert adapter.from_http(req(good))["v"].tolist() == [g[0] for g in good]
    assert message in refused(adapter, bad)


def test_dtype_per_column_and_pandas_dtypes():
    adapter = DataframeInput(columns=["n", "c"], dtype={"n": "int32", "c": "category"})
    df = adapter.from_http(req("n,c\n1,x\n2,y\n", "text/csv"))
    assert df["n"].dtype == np.int32 and isinstance(df["c"].dtype, pd.CategoricalDtype)
    assert "row 1 (line 3), column 'n': 'z' is not an integer" in refused(
        adapter, "n,c\n1,x\nz,y\n", "text/csv"
    )


def test_allow_nan_reads_missing_and_non_finite_values_as_nan():
    adapter = DataframeInput(columns=["a", "b"], dtype="float64", allow_nan=True)
    df = adapter.from_http(req(b"[[NaN, null], [Infinity, 1]]"))
    assert math.isnan(df["a"][0]) and math.isnan(df["b"][0]) and df["a"][1] == math.inf
    df = adapter.from_http(req("a,b\n,nan\n-inf,2\n", "text/csv"))
    assert math.isnan(df["a"][0]) and math.isnan(df["b"][0]) and df["a"][1] == -math.inf
    assert adapter.options()["allow_nan"] is True


def test_direct_calls_go_through_the_same_checks():
    assert list(iris.from_direct([[1, 2, 3, 4]]).columns) == IRIS
    frame = pd.DataFrame({c: [1.0] for c in reversed(IRIS)})
    assert list(iris.from_direct(frame).columns) == IRIS
    with pytest.raises(BadInput, match="the input is missing column 'petal_width'"):
        iris.from_direct(frame.drop(columns="petal_width"))
    with pytest.raises(BadInput, match="row 0, column 'sepal_length': nan is out of the range"):
        iris.from_direct(frame.assign(sepal_length=[math.nan]))


def test_batches_of_different_columns_are_not_merged():
    plain = DataframeInput()
    a, b = plain.from_direct([{"x": 1}]), plain.from_direct([{"y": 1}])
    with pytest.raises(BadInput, match="different columns"):
        plain.merge([a, b])
    c = plain.from_direct([{"x": 1.5}])
    with pytest.raises(BadInput, match="column types"):
        plain.merge([a, c])
    assert plain.merge([a, a])[1] == [1, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dtype": "nonsense"}, "DataframeInput(dtype='nonsense')"),
        ({"columns": ["a"], "dtype": {"b": "int64"}}, "names column(s) 'b'"),
        ({"columns": ["a", "a"]}, "names a twice"),
        ({"example": {1, 2}}, "must be a request body as a JSON value"),
        ({"example": [math.nan]}, "must be a request body as a JSON value"),
    ],
)
def test_declarations_are_checked_when_made(kwargs, message):
    with pytest.raises(InvalidArgument) as caught:
        DataframeInput(**kwargs)
    assert message in caught.value.message


# --- NdarrayInput -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("adapter", "body", "message"),
    [
        (NdarrayInput(), [[1, 2], [3]], "do not form a rectangular float32 array"),
        (NdarrayInput(), [1, "1.5"], "item [1]: '1.5' is not a number"),
        (NdarrayInput(), [[1, 2], [True, 4]], "item [1, 0]: true is not a number"),
        (NdarrayInput(), [1e300], "item [0]: 1e+300 is out of the range of float32"),
        (NdarrayInput(), [None], "item [0]: null is not a number"),
        (NdarrayInput(dtype="int64"), [1.7], "item [0]: 1.7 is not an integer"),
        (NdarrayInput(dtype="uint8"), [300], "item [0]: 300 is out of the range of uint8"),
        (NdarrayInput(dtype="float64"), b"[NaN]", "holds NaN"),
        (NdarrayInput(shape=(-1, 2)), [[1, 2, 3]], "shape [1, 3]; expected [-1, 2]"),
    ],
)
def test_ndarray_refusals_name_the_item(adapter, body, message):
    assert message in refused(adapter, body)


def test_ndarray_allow_nan_and_whole_floats():
    assert math.isnan(NdarrayInput(allow_nan=True).from_http(req(b"[NaN, 1]"))[0])
    assert NdarrayInput(dtype="int64").from_direct([2.0, 3]).tolist() == [2, 3]
    with pytest.raises(InvalidArgument, match="each axis is a size"):
        NdarrayInput(shape=(2, "x"))


def test_json_input_is_strict_unless_allowed():
    assert "holds NaN" in refused(JsonInput(), b"[NaN]")
    assert math.isnan(JsonInput(allow_nan=True).from_http(req(b"[NaN]"))[0])
