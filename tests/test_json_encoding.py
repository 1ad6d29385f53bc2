"""Strict JSON encoding of results (bentolite/adapters/json_encoding.py): orjson and the standard
library fallback give the same values, and every answer parses with a strict parser."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strict_parse import strict_loads

from bentolite.adapters.json_encoding import json_dumps, jsonable, stdlib_dumps
from bentolite.exceptions import InferenceError


def expected(value):
    """What a value must read back as: floats that are not finite as None, containers walked."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: expected(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [expected(v) for v in value]
    return value


plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)

arrays = hnp.arrays(
    dtype=st.sampled_from(["float64", "float32", "float16", "int64", "int8", "uint32", "bool", ">f8", "<i2"]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)


@settings(deadline=None, max_examples=300)
@given(plain)
def test_plain_values_read_back_strictly_with_non_finite_floats_as_null(value):
    fast, slow = json_dumps(value), stdlib_dumps(value)
    assert strict_loads(fast) == strict_loads(slow) == expected(value)


@settings(deadline=None, max_examples=300)
@given(arrays, st.booleans())
def test_arrays_read_back_as_their_float64_values_whatever_the_dtype_or_layout(array, strided):
    if strided and array.ndim:
        array = array[::-1]  # a view that is not C-contiguous
    want = expected(array.astype("float64").tolist() if array.dtype.kind == "f" else array.tolist())
    nested = {"a": array, "b": [array]}
    assert strict_loads(json_dumps(array)) == strict_loads(stdlib_dumps(array)) == want
    assert strict_loads(json_dumps(nested)) == {"a": want, "b": [want]}


def test_float32_values_are_written_as_the_values_they_hold():
    # 0.1 as float32 is 0.100000001490116...: the answer says so, as numpy's tolist() does
    assert strict_loads(json_dumps(np.float32(0.1))) == float(np.float32(0.1)) != 0.1
    assert strict_loads(json_dumps(np.array([0.1], dtype=np.float32))) == [float(np.float32(0.1))]


def test_pandas_values():
    frame = pd.DataFrame({"x": [1.0, np.nan, np.inf], "s": ["a", None, "c"]})
    records = [{"x": 1.0, "s": "a"}, {"x": None, "s": None}, {"x": None, "s": "c"}]
    assert strict_loads(json_dumps(frame)) == strict_loads(stdlib_dumps(frame)) == records
    numbered = pd.DataFrame([[1, 2.5]])
    assert strict_loads(json_dumps(numbered)) == strict_loads(stdlib_dumps(numbered)) == [{"0": 1, "1": 2.5}]
    series = pd.Series([1, None], dtype="Int64")
    assert strict_loads(json_dumps(series)) == strict_loads(stdlib_dumps(series)) == [1, None]
    assert strict_loads(json_dumps({"na": pd.NA, "nat": pd.NaT, "idx": pd.Index([3, 4])})) == {
        "na": None,
        "nat": None,
        "idx": [3, 4],
    }


def test_what_orjson_refuses_goes_through_the_standard_library_with_the_same_values():
    huge = 2**70  # past 64 bits
    assert strict_loads(json_dumps({"n": huge})) == {"n": huge}
    assert strict_loads(json_dumps({1: "a", None: "b"})) == {"1": "a", "None": "b"}
    assert json_dumps("\ud800") == b'"\\ud800"'  # a lone surrogate stays escaped, never bad UTF-8
    assert strict_loads(json_dumps(b"\xffok")) == "\ufffdok"
    assert strict_loads(json_dumps({1, 2})) == [1, 2]


def test_ensure_ascii_escapes_everything_outside_ascii():
    out = json_dumps({"é": ["日本", float("nan")]}, ensure_ascii=True)
    assert out.isascii() and strict_loads(out) == {"é": ["日本", None]}


def test_values_that_are_not_json_are_an_inference_error_naming_the_type():
    with pytest.raises(InferenceError, match="type object cannot be rendered"):
        json_dumps(object())
    with pytest.raises(InferenceError, match="complex"):
        jsonable(1j)
