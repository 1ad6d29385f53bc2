"""Clipper query bodies, read the way Clipper's query frontend reads them.

Clipper 0.4's query frontend parses ``{"input": X}`` and ``{"input_batch": [X, ...]}`` with
rapidjson, which types every number by how it is written: ``1`` is an integer and ``1.0`` or
``1e0`` a double. A ``doubles`` application takes only doubles, a ``floats`` one only doubles
within the float32 range, an ``ints`` one only integers within int32. Whatever the frontend
refuses it answers with HTTP 400 and ``{"error": "Json error", "cause": "Error parsing JSON:
<what>. Expected JSON schema: <schema>"}``; :class:`~bentolite.exceptions.ClipperQueryError`
carries exactly that, so a client that works against ``bentolite serve`` works against Clipper.

Where this reader is stricter than the frontend, the frontend would hand the model garbage: a
bytes input that is not base64 (the frontend decodes it anyway), an empty ``input_batch``.
"""

from __future__ import annotations

from typing import Any, Callable

from bentolite.exceptions import ClipperQueryError

#: the schema Clipper's frontend quotes in every "Json error" (its own text, spacing included)
PREDICTION_JSON_SCHEMA = '\n  {\n   "input" := [double] | [int] | [string] | [byte] | [float],\n  }\n'

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_FLOAT32_MAX = 3.4028234e38  # the bound of rapidjson's IsFloat()
# rapidjson stores an integer literal outside int64/uint64 as a double
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
# an integer literal this large does not fit a double at all: a parse error for rapidjson
_TOO_BIG = 2**1024


def query_error(what: str) -> ClipperQueryError:
    """The error Clipper's frontend answers for a query it cannot read."""
    return ClipperQueryError(f"Error parsing JSON: {what}. Expected JSON schema: {PREDICTION_JSON_SCHEMA}")


def json_type(value: Any) -> str:
    """rapidjson's name for the type of a parsed JSON value (``Number``, ``String``...)."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def is_double(value: Any) -> bool:
    """Whether rapidjson holds ``value`` as a double: a literal with a fraction or exponent."""
    if type(value) is float:
        return True
    return type(value) is int and not _INT64_MIN <= value <= _UINT64_MAX


def is_float(value: Any) -> bool:
    return is_double(value) and -_FLOAT32_MAX <= float(value) <= _FLOAT32_MAX


def is_int(value: Any) -> bool:
    return type(value) is int and _INT32_MIN <= value <= _INT32_MAX


def read_inputs(body: Any, batch_element: Callable[[Any], Any], single: Callable[[Any], Any]) -> list[Any]:
    """The inputs of a parsed query body, each passed through ``single`` (``{"input"}``) or
    ``batch_element`` (each element of ``{"input_batch"}``). Like Clipper, ``input`` wins when
    both keys are given."""
    if not isinstance(body, dict):
        raise query_error("Can only get key-value pair from an object")
    if "input" in body:
        return [single(body["input"])]
    if "input_batch" in body:
        batch = body["input_batch"]
        if not isinstance(batch, list):
            raise query_error(type_mismatch("input_batch", "Array", batch))
        if not batch:
            raise ClipperQueryError('"input_batch" is empty; send at least one input')
        return [batch_element(x) for x in batch]
    raise query_error("JSON object does not have required keys input or input_batch")


def type_mismatch(key: str, expected: str, value: Any) -> str:
    # Clipper's text, its missing space included
    return f"Type mismatch! JSON key {key} expected type {expected}but found type {json_type(value)}"


def number_array(value: Any, accepts: Callable[[Any], bool], label: str) -> list[Any]:
    """A JSON array whose every element ``accepts``; else Clipper's error naming ``label``."""
    for element in value:
        if type(element) is int and abs(element) >= _TOO_BIG:
            raise query_error("JSON parse error: Number too big to be stored in double")
        if not accepts(element):
            raise query_error(f"Array input of type {json_type(element)} is not of type {label}")
    return value
