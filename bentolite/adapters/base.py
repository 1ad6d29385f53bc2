"""The adapter contract: every conversion between the outside world and a user function.

An adapter (an API's input type) owns four conversions, so that a prediction behaves the same
whether it arrives as a direct Python call, an HTTP request or a Clipper batch:

* ``from_direct(value)``: the argument of ``svc.predict(value)`` -> what the user function gets;
* ``from_http(request)``: one HTTP request (its answer is rendered by the API's output adapter,
  :mod:`bentolite.adapters.outputs`; ``default_output()`` is the one used when none is named);
* ``merge(payloads)`` / ``split(result, sizes)``: how concurrent requests form one batch
  (``batch_size(payload)``: how many items of a batch one request holds);
* ``from_clipper(frames)`` / ``to_clipper(result, n)``: a Clipper RPC batch (Clipper adapters);

plus its OpenAPI request schema (``openapi_request``) and its record in
bentolite.yaml (``to_spec``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from bentolite.adapters import strict_json

# re-exported: results are encoded by json_encoding, which adapters and tests import from here too
from bentolite.adapters.json_encoding import json_dumps as json_dumps
from bentolite.adapters.json_encoding import jsonable as jsonable
from bentolite.adapters.multipart import FormLimits
from bentolite.exceptions import BadInput, InferenceError, InvalidArgument, UnsupportedMediaType

if TYPE_CHECKING:
    from bentolite.adapters.outputs import Output


@attrs.frozen
class HttpRequest:
    """The parts of an HTTP request an adapter reads.

    ``media_type`` is the lower-cased content type without parameters (``"application/json"``);
    ``params`` holds its parameters (``charset``, ``boundary``); ``form_limits`` bounds how
    much of a multipart body an adapter reads.
    """

    body: bytes
    media_type: str = ""
    params: Mapping[str, str] = attrs.field(factory=dict)
    headers: Mapping[str, str] = attrs.field(factory=dict)
    form_limits: FormLimits = FormLimits()

    @classmethod
    def from_content_type(cls, body: bytes, content_type: str | None, **kw: Any) -> HttpRequest:
        """Build a request from a raw ``Content-Type`` header value."""
        media_type, params = parse_content_type(content_type or "")
        return cls(body=body, media_type=media_type, params=params, **kw)


@attrs.frozen
class HttpResponse:
    """What an adapter renders for one request."""

    body: bytes
    status: int = 200
    media_type: str = "application/json"


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Split ``'text/csv; charset=utf-8'`` into ``('text/csv', {'charset': 'utf-8'})``."""
    if ";" not in value:  # the common case: no parameters
        return value.strip().lower(), {}
    media_type, _, rest = value.partition(";")
    params = {}
    for part in rest.split(";"):
        key, sep, val = part.strip().partition("=")
        if sep:
            params[key.strip().lower()] = val.strip().strip('"')
    return media_type.strip().lower(), params


def load_json_body(request: HttpRequest, *, allow_nan: bool = False) -> Any:
    """Parse a JSON body strictly (see :mod:`bentolite.adapters.strict_json`) or raise
    :class:`BadInput` naming the problem. ``allow_nan`` admits ``NaN``/``Infinity`` literals."""
    return strict_json.loads(request.body, allow_nan=allow_nan)


def check_example(owner: str, example: Any, *, what: str = "a request body") -> Any:
    """The ``example=`` of an adapter or output, refused unless it is a strict JSON value."""
    if example is not None:
        try:
            json.dumps(example, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(
                f"{owner}(example=...) must be {what} as a JSON value (dict, list, str, number or "
                f"bool); got {type(example).__name__}: {exc}"
            ) from exc
    return example


class Declared:
    """What input adapters and outputs share: a name, constructor options and their record."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def options(self) -> dict[str, Any]:
        """Constructor options, recorded in bentolite.yaml and shown in OpenAPI."""
        return {}

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": self.name}
        if self.options():
            spec["options"] = self.options()
        return spec


def result_length(result: Any) -> int:
    """Length of a batch result, or -1 when it has none (a scalar)."""
    if hasattr(result, "shape") and getattr(result, "shape", None) is not None:
        shape = result.shape
        return shape[0] if len(shape) else -1
    try:
        return len(result)
    except TypeError:
        return -1


def check_result_length(result: Any, expected: int) -> None:
    """Raise :class:`InferenceError` unless a batch result has one row per input."""
    got = result_length(result)
    if got != expected:
        raise InferenceError(
            f"the API returned {got if got >= 0 else 'a scalar'} result(s) for a batch of "
            f"{expected} input(s); return one result per input"
        )


def split_rows(result: Any, sizes: list[int]) -> list[Any]:
    """Split a list, array, Series or DataFrame into consecutive runs of ``sizes`` rows."""
    check_result_length(result, sum(sizes))
    rows = result.iloc if hasattr(result, "iloc") else result
    out, start = [], 0
    for size in sizes:
        out.append(rows[start : start + size])
        start += size
    return out


class Adapter(Declared):
    """Base of every input type. Subclasses override what differs from these defaults.

    By default one request is one batch item: ``merge`` makes a list of payloads and ``split``
    hands item ``i`` of the result back to request ``i``.
    """

    #: whether concurrent requests can be merged into one call (``@api(batch=True)``)
    batchable: bool = True
    #: Clipper input type ("bytes", "ints", "floats", "doubles", "strings") or None
    clipper_input_type: str | None = None
    #: media types ``from_http`` accepts; ``*`` suffix matches a family (``image/*``)
    accepts: Sequence[str] = ("application/json",)
    #: a request body the OpenAPI document shows (a JSON value), or None to derive one
    example: Any = None

    def __init__(self, *, example: Any = None) -> None:
        self.example = check_example(self.name, example)

    def to_spec(self) -> dict[str, Any]:
        spec = super().to_spec()
        if self.clipper_input_type:
            spec["clipper_input_type"] = self.clipper_input_type
        return spec

    # --- direct call -------------------------------------------------------------------------
    def from_direct(self, value: Any) -> Any:
        """Convert the argument of a direct call ``svc.api(value)``."""
        return value

    # --- HTTP --------------------------------------------------------------------------------
    def check_media_type(self, request: HttpRequest) -> None:
        """Raise :class:`UnsupportedMediaType` unless the request's type is accepted."""
        media = request.media_type or self.accepts[0]
        for accepted in self.accepts:
            if accepted.endswith("/*") and media.startswith(accepted[:-1]):
                return
            if media == accepted:
                return
        raise UnsupportedMediaType(
            f"{self.name} does not accept content type {request.media_type!r}; "
            f"send one of: {', '.join(self.accepts)}"
        )

    def from_http(self, request: HttpRequest) -> Any:
        """Parse one request into the payload the user function (or ``merge``) gets."""
        self.check_media_type(request)
        return load_json_body(request)

    def default_output(self) -> Output:
        """The output of an API that names none (``@api(input=...)`` alone): strict JSON, or for
        a Clipper input type the answer of Clipper's query frontend."""
        from bentolite.adapters.outputs import ClipperOutput, JsonOutput

        return ClipperOutput(self) if self.clipper_input_type else JsonOutput()

    # --- batching ----------------------------------------------------------------------------
    def merge(self, payloads: list[Any]) -> tuple[Any, list[int]]:
        """Merge request payloads into one batch; returns the batch and each request's size."""
        return list(payloads), [1] * len(payloads)

    def batch_size(self, payload: Any) -> int:
        """How many batch items one request's payload holds (the size ``merge`` reports for it)."""
        return self.merge([payload])[1][0]

    def split(self, result: Any, sizes: list[int]) -> list[Any]:
        """Split a batch result back into one result per request (item ``i`` to request ``i``)."""
        check_result_length(result, sum(sizes))
        rows = result.iloc if hasattr(result, "iloc") else result
        return [rows[i] for i in range(len(sizes))]

    # --- Clipper -----------------------------------------------------------------------------
    def from_clipper(self, frames: list[bytes]) -> list[Any]:
        raise BadInput(f"{self.name} is not a Clipper input type; use a Clipper* adapter")

    def to_clipper(self, result: Any, n: int) -> list[str]:
        raise BadInput(f"{self.name} is not a Clipper input type; use a Clipper* adapter")

    # --- OpenAPI -----------------------------------------------------------------------------
    def openapi_request(self) -> dict[str, Any]:
        """OpenAPI ``requestBody.content`` mapping."""
        return {"application/json": {"schema": {}}}

    def openapi_examples(self) -> dict[str, Any]:
        """Media type -> an example request body for the OpenAPI document: the adapter's
        ``example=``, else what :meth:`derived_examples` makes from its declaration."""
        if self.example is not None:
            return {next(iter(self.openapi_request())): self.example}
        return self.derived_examples()

    def derived_examples(self) -> dict[str, Any]:
        """Example request bodies derived from the adapter's options (none by default)."""
        return {}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{self.name}({opts})"
