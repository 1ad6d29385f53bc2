"""The five Clipper input types, one adapter each.

Clipper hands a model container a batch of inputs of one type. The user function always gets a
list (one element per input) of:

=====================  ==============  =============================================
adapter                Clipper type    element given to the function
=====================  ==============  =============================================
``ClipperBytesInput``    ``bytes``       ``bytes``
``ClipperIntsInput``     ``ints``        1-D ``numpy.ndarray`` of ``int32``
``ClipperFloatsInput``   ``floats``      1-D ``numpy.ndarray`` of ``float32``
``ClipperDoublesInput``  ``doubles``     1-D ``numpy.ndarray`` of ``float64``
``ClipperStringsInput``  ``strings``     ``str`` (UTF-8 decoded)
=====================  ==============  =============================================

and returns one result per input. Each result becomes exactly one string: a ``str`` as it is,
anything else as JSON text, so Clipper's query frontend nests it as a JSON value.

Over HTTP these adapters speak the body of Clipper's query frontend: ``{"input": X}`` or
``{"input_batch": [X, ...]}`` in, ``{"query_id", "output", "default"}`` (or
``{"batch_predictions": [...]}`` for more than one input) out. X is a JSON number array for the
numeric types, a JSON string for strings and a base64 string for bytes.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import math
from typing import Any

from bentolite.adapters import clipper_query
from bentolite.adapters.base import (
    Adapter,
    HttpRequest,
    HttpResponse,
    check_result_length,
    jsonable,
    load_json_body,
    split_rows,
)
from bentolite.exceptions import BadInput

#: frames not received into one buffer (see ``InputFrames``): inputs of at most this many bytes
#: are decoded with one join and one frombuffer per batch; larger ones get a zero-copy view each
#: (the copy would cost more than it saves)
_JOIN_LIMIT = 8192
_JSON_CONSTANTS = {True: "true", False: "false", None: "null"}


class ClipperInput(Adapter):
    """Common behaviour of the Clipper adapters; use one of the five subclasses."""

    accepts = ("application/json",)
    #: numpy dtype of each element on the wire (little-endian), or None for bytes/strings
    wire_dtype: str | None = None
    _query_ids = itertools.count()

    # --- one input ---------------------------------------------------------------------------
    def convert(self, value: Any) -> Any:
        """One input given in Python (a direct call) -> the element the function gets."""
        import numpy as np

        try:
            arr = np.asarray(value, dtype=self.wire_dtype)
        except (TypeError, ValueError, OverflowError) as exc:
            raise BadInput(
                f"{self.name} input cannot be read as {self.wire_dtype} numbers", detail=str(exc)
            ) from exc
        if arr.ndim != 1:
            raise BadInput(
                f"{self.name} inputs are 1-D number arrays; got an input of shape {list(arr.shape)}"
            )
        return arr

    # --- one input of a query body, checked as Clipper's query frontend checks it ---------------
    #: whether a JSON number (as parsed) is one this input type takes, and its name in errors
    _accepts = staticmethod(clipper_query.is_double)
    _number_label = "double"

    def convert_json(self, value: Any) -> Any:
        """The ``"input"`` of a query body -> the element the function gets."""
        if not isinstance(value, list):
            raise clipper_query.query_error(clipper_query.type_mismatch("input", "Array", value))
        return self.convert(clipper_query.number_array(value, self._accepts, self._number_label))

    def convert_batch_json(self, value: Any) -> Any:
        """One element of a query's ``"input_batch"`` -> the element the function gets."""
        if not isinstance(value, list):
            raise clipper_query.query_error(
                f"Array input of type {clipper_query.json_type(value)} is not of type array"
            )
        return self.convert(clipper_query.number_array(value, self._accepts, self._number_label))

    def decode_frame(self, frame: bytes) -> Any:
        import numpy as np

        itemsize = np.dtype(self.wire_dtype).itemsize
        if len(frame) % itemsize:
            raise BadInput(
                f"{self.clipper_input_type} input of {len(frame)} bytes is not a whole number of "
                f"{itemsize}-byte values"
            )
        arr = np.frombuffer(frame, dtype=self.wire_dtype)
        arr.flags.writeable = False  # a view of the received frame, read-only like bytes
        return arr

    def encode_input(self, value: Any) -> bytes:
        """One input -> its bytes on Clipper's wire (used by clients and tests)."""
        return self.convert(value).tobytes()

    # --- adapter contract --------------------------------------------------------------------
    def from_direct(self, value: Any) -> list[Any]:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise BadInput(
                f"{self.name} takes a list of inputs (one per prediction), got "
                f"{type(value).__name__}; e.g. svc.api([x])"
            )
        return [self.convert(v) for v in value]

    def from_http(self, request: HttpRequest) -> list[Any]:
        """A query body, read as Clipper's query frontend reads it (see ``clipper_query``);
        what that frontend refuses is a 400 with its ``{"error": "Json error", "cause"}``."""
        self.check_media_type(request)
        try:
            body = load_json_body(request)
        except BadInput as exc:
            raise clipper_query.query_error(exc.message) from None
        return clipper_query.read_inputs(body, self.convert_batch_json, self.convert_json)

    def to_http(self, result: Any, payload: Any) -> HttpResponse:
        outputs = self.to_clipper(result, len(payload))
        predictions = [
            {"query_id": next(self._query_ids), "output": _parse_output(o), "default": False} for o in outputs
        ]
        body = predictions[0] if len(predictions) == 1 else {"batch_predictions": predictions}
        return HttpResponse(json.dumps(body, separators=(",", ":")).encode("utf-8"))

    def merge(self, payloads: list[Any]) -> tuple[Any, list[int]]:
        return [x for p in payloads for x in p], [len(p) for p in payloads]

    def batch_size(self, payload: Any) -> int:
        return len(payload)

    def split(self, result: Any, sizes: list[int]) -> list[Any]:
        return split_rows(result, sizes)

    def from_clipper(self, frames: list[Any]) -> list[Any]:
        """A Clipper batch's input frames (bytes-like) -> one element per input."""
        n = len(frames)
        if self.wire_dtype is not None:
            joined = getattr(frames, "joined", None)
            if joined is not None:  # received into one buffer
                size = frames.size  # type: ignore[attr-defined]
                if size is not None:
                    return self._decode_equal(joined, n, size)
            elif n > 1:
                sizes = set(map(len, frames))
                if len(sizes) == 1:
                    size = sizes.pop()
                    if size <= _JOIN_LIMIT:
                        return self._decode_equal(b"".join(frames), n, size)
        return [self.decode_frame(f) for f in frames]

    def _decode_equal(self, joined: Any, n: int, size: int) -> list[Any]:
        # One decode for the whole batch: the inputs, back to back in ``joined``, as one (n, k)
        # array, each input a row view of it. For small inputs that is far cheaper than one
        # frombuffer per input.
        import numpy as np

        itemsize = np.dtype(self.wire_dtype).itemsize
        if size % itemsize:
            raise BadInput(
                f"{self.clipper_input_type} input of {size} bytes is not a whole number of "
                f"{itemsize}-byte values"
            )
        batch = np.frombuffer(joined, self.wire_dtype).reshape(n, size // itemsize)
        batch.flags.writeable = False  # read-only, like bytes, whatever buffer it views
        return list(batch)

    def to_clipper(self, result: Any, n: int) -> list[str]:
        check_result_length(result, n)
        return [item if type(item) is str else _output_text(item) for item in result]

    def openapi_request(self) -> dict[str, Any]:
        item = self.openapi_item()
        return {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "input": item,
                        "input_batch": {"type": "array", "items": item},
                    },
                    "description": 'Clipper query body: "input" or "input_batch"',
                }
            }
        }

    def openapi_item(self) -> dict[str, Any]:
        kind = "integer" if self.clipper_input_type == "ints" else "number"
        return {"type": "array", "items": {"type": kind}}

    def openapi_response(self) -> dict[str, Any]:
        prediction = {
            "type": "object",
            "properties": {
                "query_id": {"type": "integer"},
                "output": {},
                "default": {"type": "boolean"},
            },
        }
        return {
            "application/json": {
                "schema": {
                    "oneOf": [
                        prediction,
                        {
                            "type": "object",
                            "properties": {"batch_predictions": {"type": "array", "items": prediction}},
                        },
                    ]
                }
            }
        }


def _output_text(item: Any) -> str:
    """One result as the string Clipper gets: a str as it is, anything else as JSON text."""
    if isinstance(item, str):
        return item
    kind = type(item)
    # Plain numbers, the usual results, are written directly: what json.dumps would write.
    if kind is bool or item is None:
        return _JSON_CONSTANTS[item]
    if kind is int:
        return int.__repr__(item)
    if isinstance(item, float) and math.isfinite(item):  # numpy.float64 is a float
        return float.__repr__(item)
    return json.dumps(jsonable(item), separators=(",", ":"), ensure_ascii=False)


def _parse_output(text: str) -> Any:
    """Clipper's query frontend nests an output that is valid JSON, else returns it as a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


class ClipperIntsInput(ClipperInput):
    """Clipper ``ints``: each input is a 1-D ``int32`` array."""

    clipper_input_type = "ints"
    wire_dtype = "<i4"

    _accepts = staticmethod(clipper_query.is_int)
    _number_label = "int"


class _ClipperRealInput(ClipperInput):
    """floats and doubles: like Clipper, a query's numbers must be written as reals (``1.0``).

    ``allow_integers=True`` also takes integer literals (``1``) in queries to ``bentolite
    serve``; Clipper's query frontend refuses them with HTTP 400, so a client relying on that
    works against ``bentolite serve`` only.
    """

    def __init__(self, *, allow_integers: bool = False, example: Any = None) -> None:
        super().__init__(example=example)
        self.allow_integers = bool(allow_integers)
        if allow_integers:
            strict = self._accepts
            self._accepts = lambda v: strict(v) or (type(v) is int and strict(float(v)))  # type: ignore[method-assign]

    def options(self) -> dict[str, Any]:
        return {"allow_integers": True} if self.allow_integers else {}


class ClipperFloatsInput(_ClipperRealInput):
    """Clipper ``floats``: each input is a 1-D ``float32`` array."""

    clipper_input_type = "floats"
    wire_dtype = "<f4"
    _accepts = staticmethod(clipper_query.is_float)
    _number_label = "float"


class ClipperDoublesInput(_ClipperRealInput):
    """Clipper ``doubles``: each input is a 1-D ``float64`` array."""

    clipper_input_type = "doubles"
    wire_dtype = "<f8"


class ClipperBytesInput(ClipperInput):
    """Clipper ``bytes``: each input is ``bytes`` (base64 in JSON query bodies)."""

    clipper_input_type = "bytes"

    def convert(self, value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, str):
            return value.encode("utf-8")
        if hasattr(value, "tobytes"):
            return value.tobytes()
        raise BadInput(f"ClipperBytesInput inputs are bytes, got {type(value).__name__}")

    def convert_json(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise clipper_query.query_error(clipper_query.type_mismatch("input", "String", value))
        return self._decode_base64(value)

    def convert_batch_json(self, value: Any) -> bytes:
        if not isinstance(value, str):
            kind = clipper_query.json_type(value)
            what = f"PredictionData of type {kind} is not of type base64-encoded string"
            raise clipper_query.query_error(what)
        return self._decode_base64(value)

    @staticmethod
    def _decode_base64(value: str) -> bytes:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise clipper_query.query_error(f"Input is not valid base64 ({exc})") from exc

    def decode_frame(self, frame: bytes) -> bytes:
        return bytes(frame)

    def encode_input(self, value: Any) -> bytes:
        return self.convert(value)

    def openapi_item(self) -> dict[str, Any]:
        return {"type": "string", "format": "byte"}


class ClipperStringsInput(ClipperInput):
    """Clipper ``strings``: each input is a ``str`` (UTF-8 on the wire)."""

    clipper_input_type = "strings"

    def convert(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, (bytes, bytearray)):
            return self.decode_frame(bytes(value))
        raise BadInput(f"ClipperStringsInput inputs are strings, got {type(value).__name__}")

    def convert_json(self, value: Any) -> str:
        if not isinstance(value, str):
            raise clipper_query.query_error(clipper_query.type_mismatch("input", "String", value))
        return value

    def convert_batch_json(self, value: Any) -> str:
        if not isinstance(value, str):
            raise clipper_query.query_error(
                f"Array input of type {clipper_query.json_type(value)} is not of type string"
            )
        return value

    def decode_frame(self, frame: bytes) -> str:
        try:
            return str(frame, "utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput("strings input is not valid UTF-8", detail=str(exc)) from exc

    def encode_input(self, value: Any) -> bytes:
        return self.convert(value).encode("utf-8")

    def openapi_item(self) -> dict[str, Any]:
        return {"type": "string"}


#: Clipper input type name -> adapter class
BY_INPUT_TYPE: dict[str, type[ClipperInput]] = {
    c.clipper_input_type: c  # type: ignore[misc]
    for c in (
        ClipperBytesInput,
        ClipperIntsInput,
        ClipperFloatsInput,
        ClipperDoublesInput,
        ClipperStringsInput,
    )
}
