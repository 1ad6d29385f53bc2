"""Strict parsing of JSON request bodies (bentolite/adapters/strict_json.py)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bentolite.adapters.strict_json import MAX_DEPTH, loads
from bentolite.exceptions import BadInput

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


@settings(deadline=None, max_examples=150)
@given(json_values)
def test_every_valid_document_parses_as_the_standard_library_reads_it(value):
    body = json.dumps(value, ensure_ascii=bool(hash(repr(value)) % 2)).encode()
    # repr, not ==: 1 == 1.0 and 0.0 == -0.0, but a parser must not change the type or sign
    assert repr(loads(body)) == repr(json.loads(body))


@pytest.mark.parametrize(
    "number", [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**18, 10**19, -(10**30)]
)
def test_integers_around_64_bits_keep_their_exact_value_and_type(number):
    value = loads(f"[{number}, {number}.0]".encode())
    assert type(value[0]) is int and value[0] == number
    assert type(value[1]) is float


@settings(deadline=None, max_examples=150)
@given(st.binary(max_size=60) | st.text(max_size=60).map(str.encode))
def test_arbitrary_bytes_parse_or_raise_bad_input(body):
    try:
        value = loads(body)
    except BadInput as exc:
        assert exc.message and "\n" not in exc.message
        return
    # whatever parsed is plain JSON: it re-encodes as strict UTF-8 JSON
    json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, NaN]", "holds NaN, which is not JSON"),
        (b'{"x": Infinity}', "holds Infinity"),
        (b"-Infinity", "holds -Infinity"),
        (b"[1e400]", "number 1e400 is out of the range of a 64-bit float"),
        (b"[-2.5E+309]", "out of the range"),
        (b"[" + b"9" * 400 + b".5]", "out of the range"),
        (b'["\\ud800"]', "lone UTF-16 surrogate (\\ud800)"),
        (b'{"\\udc00x": 1}', "lone UTF-16 surrogate (\\udc00)"),
        (b"[" * 900 + b"]" * 900, f"more than {MAX_DEPTH} deep"),
        (b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), f"more than {MAX_DEPTH} deep"),
        (b"[" * 100000, f"more than {MAX_DEPTH} deep"),
        (b"\xff\xfe[\x001\x00]\x00", "not UTF-8"),
        (b"", "empty"),
        (b"[1,]", "not valid JSON"),
    ],
)
def test_refused(body, message):
    with pytest.raises(BadInput) as caught:
        loads(body)
    assert message in caught.value.message + str(caught.value.detail)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
        # brackets inside strings, escaped quotes and backslashes do not nest
        b'["' + b"[" * 200 + b'"]',
        b'["\\\\", "\\"[[[[", ' + b"[" * 10 + b"]" * 10 + b"]",
        b'["\\ud83d\\ude00", "\\\\ud800"]',  # a surrogate pair; an escaped backslash then text
        b"[1e308, 1e-400, 123456789012345678901234567890]",
    ],
)
def test_accepted(body):
    assert loads(body) == json.loads(body)


def test_allow_nan_admits_non_finite_numbers():
    nan, inf, overflow = loads(b"[NaN, -Infinity, 1e400]", allow_nan=True)
    assert math.isnan(nan) and inf == -math.inf and overflow == math.inf
