"""Adapters (bentolite/adapters/): direct, HTTP, batching and Clipper conversions."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest

from bentolite.adapters import (
    ADAPTERS,
    ClipperBytesInput,
    ClipperDoublesInput,
    ClipperFloatsInput,
    ClipperIntsInput,
    ClipperStringsInput,
    DataframeInput,
    FileInput,
    HttpRequest,
    JsonInput,
    NdarrayInput,
    StringInput,
)
from bentolite.exceptions import BadInput, InferenceError, UnsupportedMediaType


def req(body, content_type="application/json"):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode() if content_type == "application/json" else body.encode()
    return HttpRequest.from_content_type(body, content_type)


# --- DataframeInput --------------------------------------------------------------------------
def test_dataframe_records_columns_and_csv_agree():
    a = DataframeInput()
    records = a.from_http(req([{"x": 1, "y": 2.5}, {"x": 3, "y": 4.5}]))
    columns = a.from_http(req({"x": [1, 3], "y": [2.5, 4.5]}))
    csv = a.from_http(req("x,y\n1,2.5\n3,4.5\n", "text/csv; charset=utf-8"))
    for df in (records, columns, csv):
        assert isinstance(df, pd.DataFrame)
        assert df.to_dict("list") == {"x": [1, 3], "y": [2.5, 4.5]}


def test_dataframe_rows_as_lists():
    df = DataframeInput().from_http(req([[5.1, 3.5, 1.4, 0.2]]))
    assert df.shape == (1, 4)


def test_dataframe_columns_checked_and_ordered():
    a = DataframeInput(columns=["b", "a"])
    assert list(a.from_direct({"a": [1], "b": [2], "c": [3]}).columns) == ["b", "a"]
    with pytest.raises(BadInput, match=r"row 0 is missing column 'b'"):
        a.from_http(req([{"a": 1}]))


def test_dataframe_bad_bodies():
    a = DataframeInput()
    with pytest.raises(BadInput, match="not valid JSON"):
        a.from_http(req(b"{nope"))
    with pytest.raises(BadInput, match="array of rows"):
        DataframeInput(orient="records").from_http(req({"a": [1]}))
    with pytest.raises(UnsupportedMediaType, match="text/plain"):
        a.from_http(req("x", "text/plain"))
    with pytest.raises(BadInput, match="empty"):
        a.from_http(req(b""))


def test_dataframe_merge_and_split():
    a = DataframeInput()
    p1, p2 = a.from_direct([{"v": 1}, {"v": 2}]), a.from_direct([{"v": 3}])
    batch, sizes = a.merge([p1, p2])
    assert batch["v"].tolist() == [1, 2, 3] and sizes == [2, 1]
    parts = a.split(batch["v"].to_numpy() * 10, sizes)
    assert [p.tolist() for p in parts] == [[10, 20], [30]]
    with pytest.raises(InferenceError, match="2 result"):
        a.split([1, 2], sizes)


def test_dataframe_response_is_json_list():
    resp = DataframeInput().default_output().to_http(np.array([0, 2]), req(b""))
    assert json.loads(resp.body) == [0, 2] and resp.media_type == "application/json"


# --- JSON, string, file, ndarray --------------------------------------------------------------
def test_json_input_round_trip_and_batch():
    a = JsonInput()
    assert a.from_http(req({"k": [1, 2]})) == {"k": [1, 2]}
    batch, sizes = a.merge([{"a": 1}, {"a": 2}])
    assert batch == [{"a": 1}, {"a": 2}] and sizes == [1, 1]
    assert a.split(["x", "y"], sizes) == ["x", "y"]


def test_string_input_charsets():
    a = StringInput()
    assert a.from_http(req("héllo".encode("latin-1"), "text/plain; charset=latin-1")) == "héllo"
    with pytest.raises(BadInput, match="utf-8"):
        a.from_http(req(b"\xff\xfe", "text/plain"))
    with pytest.raises(UnsupportedMediaType):
        a.from_http(req({"a": 1}))


def test_file_input_octet_stream_and_multipart():
    a = FileInput()
    assert a.from_http(req(b"\x00\x01", "application/octet-stream")) == b"\x00\x01"
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="meta"\r\n\r\nignored\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\x00bin\xffdata\r\n--XyZ--\r\n"
    )
    assert a.from_http(req(body, "multipart/form-data; boundary=XyZ")) == b"\x00bin\xffdata"
    with pytest.raises(BadInput, match="boundary"):
        a.from_http(req(body, "multipart/form-data"))


def test_ndarray_dtype_shape_and_batching():
    a = NdarrayInput(dtype="float64", shape=(-1, 2))
    arr = a.from_http(req([[1, 2], [3, 4]]))
    assert arr.dtype == np.float64 and arr.shape == (2, 2)
    with pytest.raises(BadInput, match=r"shape \[3\]; expected \[-1, 2\]"):
        a.from_direct([1, 2, 3])
    with pytest.raises(BadInput, match="float64 array"):
        a.from_direct([[1, 2], [3]])
    batch, sizes = a.merge([arr, a.from_direct([[5, 6]])])
    assert batch.shape == (3, 2) and sizes == [2, 1]
    assert [p.tolist() for p in a.split(batch[:, 0], sizes)] == [[1.0, 3.0], [5.0]]


# --- Clipper adapters ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("adapter", "dtype"),
    [(ClipperIntsInput(), np.int32), (ClipperFloatsInput(), np.float32), (ClipperDoublesInput(), np.float64)],
)
def test_clipper_numeric_direct_and_wire(adapter, dtype):
    inputs = adapter.from_direct([[1, 2, 3], [4]])
    assert [x.dtype for x in inputs] == [dtype, dtype]
    frames = [adapter.encode_input(x) for x in ([1, 2, 3], [4])]
    assert [len(f) for f in frames] == [3 * np.dtype(dtype).itemsize, np.dtype(dtype).itemsize]
    decoded = adapter.from_clipper(frames)
    assert [x.tolist() for x in decoded] == [[1, 2, 3], [4]]
    assert all(x.dtype == dtype for x in decoded)


def test_clipper_doubles_wire_is_little_endian():
    assert ClipperDoublesInput().encode_input([1.0]) == b"\x00\x00\x00\x00\x00\x00\xf0?"
    assert ClipperIntsInput().encode_input([1]) == b"\x01\x00\x00\x00"


def test_clipper_frame_size_must_match_dtype():
    with pytest.raises(BadInput, match="not a whole number of 8-byte"):
        ClipperDoublesInput().from_clipper([b"\x00" * 12])


def test_clipper_strings_and_bytes():
    s, b = ClipperStringsInput(), ClipperBytesInput()
    assert s.from_clipper(["héllo".encode()]) == ["héllo"]
    assert s.from_direct(["a", b"b"]) == ["a", "b"]
    assert b.from_clipper([b"\x00\xff"]) == [b"\x00\xff"]
    with pytest.raises(BadInput, match="UTF-8"):
        s.from_clipper([b"\xff"])


def test_clipper_outputs_are_one_string_each():
    a = ClipperDoublesInput()
    assert a.to_clipper(np.array([1, 2]), 2) == ["1", "2"]
    assert a.to_clipper(["x", {"k": np.float32(0.5)}, None], 3) == ["x", '{"k":0.5}', "null"]
    with pytest.raises(InferenceError, match="1 result"):
        a.to_clipper([1], 2)


def test_clipper_direct_call_needs_a_list():
    with pytest.raises(BadInput, match="list of inputs"):
        ClipperStringsInput().from_direct("abc")


def test_clipper_http_body_and_response_shape():
    a = ClipperDoublesInput()
    one = a.from_http(req({"input": [1.0, 2.5]}))
    assert len(one) == 1 and one[0].tolist() == [1.0, 2.5]
    body = json.loads(a.to_http([3.5], one).body)
    assert set(body) == {"query_id", "output", "default"}
    assert body["output"] == 3.5 and body["default"] is False
    many = a.from_http(req({"input_batch": [[1.0], [2.0]]}))
    body = json.loads(a.to_http(["text", 7], many).body)
    assert [p["output"] for p in body["batch_predictions"]] == ["text", 7]
    ids = [p["query_id"] for p in body["batch_predictions"]]
    assert ids[1] == ids[0] + 1


def test_clipper_http_type_errors():
    cases = [
        (ClipperDoublesInput(), {"inputs": [1.0]}, "does not have required keys input or input_batch"),
        (ClipperIntsInput(), {"input": [1.5]}, "Array input of type Number is not of type int"),
        (ClipperIntsInput(), {"input": [2**40]}, "Array input of type Number is not of type int"),
        (ClipperFloatsInput(), {"input": ["a"]}, "Array input of type String is not of type float"),
        (ClipperStringsInput(), {"input": [1]}, "JSON key input expected type Stringbut found type Array"),
        (ClipperBytesInput(), {"input": "***"}, "not valid base64"),
    ]
    for adapter, body, cause in cases:
        with pytest.raises(BadInput) as caught:
            adapter.from_http(req(body))
        assert caught.value.message == "Json error"
        assert caught.value.cause.startswith("Error parsing JSON: ") and cause in caught.value.cause
    assert ClipperBytesInput().from_http(req({"input": base64.b64encode(b"\x01\x02").decode()})) == [
        b"\x01\x02"
    ]


def test_clipper_merge_joins_lists():
    a = ClipperStringsInput()
    batch, sizes = a.merge([["a"], ["b", "c"]])
    assert batch == ["a", "b", "c"] and sizes == [1, 2]
    assert a.split(["A", "B", "C"], sizes) == [["A"], ["B", "C"]]


def test_every_adapter_has_openapi_and_spec():
    for name, cls in ADAPTERS.items():
        adapter = cls()
        assert adapter.to_spec()["type"] == name
        assert adapter.openapi_request() and adapter.default_output().openapi_response()
        assert (adapter.clipper_input_type is not None) == name.startswith("Clipper")
