"""Output types of an API: how the user function's result becomes an HTTP answer.

An output adapter owns the rendering of one request's result (``to_http``) and the OpenAPI
schema of the answer (``openapi_response``), as an input adapter owns the parsing of the request:

=====================================  ==========================================================
output                                 the function returns -> the HTTP answer
=====================================  ==========================================================
``JsonOutput()`` (the default)         any JSON-able value (numpy and pandas included) -> strict
                                       ``application/json``: NaN and infinities become ``null``
``DataframeOutput(output_orient=...)``  a DataFrame (or Series, array, rows) -> JSON records
                                       (or columns), or CSV when the request's ``Accept`` asks
                                       for ``text/csv``
``NdarrayOutput(dtype=None)``          an array (or nested lists) -> nested JSON lists
``TextOutput()``                       ``str`` -> ``text/plain; charset=utf-8``
``FileOutput(content_type=...)``       ``bytes`` or a binary file object -> the bytes as they are
``ImageOutput(extension_format=...)``  image ``bytes`` -> ``image/png``, ``image/jpeg``, ...
=====================================  ==========================================================

``@api(input=..., output=...)`` takes one; without it an API answers with its input adapter's
default output (:meth:`~bentolite.adapters.Adapter.default_output`): ``JsonOutput`` for every
input type, except the Clipper ones, which answer as Clipper's query frontend does
(:class:`ClipperOutput`) and take no other output. A batched API's result is split into one part
per request first (by the input adapter), then each part is rendered on its own.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bentolite.adapters.base import Declared, HttpRequest, HttpResponse, check_example
from bentolite.adapters.json_encoding import json_dumps
from bentolite.exceptions import InferenceError, InvalidArgument

if TYPE_CHECKING:
    from bentolite.adapters.base import Adapter

_JSON = "application/json"


class Output(Declared):
    """Base of every output type (``BaseOutputAdapter`` in BentoML 0.x)."""

    #: the content type of a successful answer
    media_type: str = _JSON
    #: error statuses this output adds to those of every API (OpenAPI ``responses``)
    error_statuses: tuple[str, ...] = ()
    #: an answer the OpenAPI document shows (``example=``; not recorded in bentolite.yaml)
    example: Any = None

    def for_input(self, adapter: Adapter) -> Output:
        """The output an API with input ``adapter`` answers with when given this one (checked
        once, by ``@api``)."""
        if adapter.clipper_input_type:
            raise InvalidArgument(
                f"@api(input={adapter.name}(), output={self.name}()): a Clipper API answers as "
                "Clipper's query frontend does (one string per input); leave output= out"
            )
        return self

    def to_http(self, result: Any, request: HttpRequest, payload: Any = None) -> HttpResponse:
        """Render one request's result; ``request`` is that request, ``payload`` its parsed input."""
        return HttpResponse(self.render(result), media_type=self.media_type)

    def render(self, result: Any) -> bytes:
        """The body for ``result`` (the outputs whose answer does not depend on the request)."""
        raise NotImplementedError

    def openapi_response(self) -> dict[str, Any]:
        """OpenAPI ``responses['200'].content`` mapping."""
        return {self.media_type: {"schema": {}}}

    def openapi_examples(self) -> dict[str, Any]:
        """Media type -> the example answer of the OpenAPI document (the output's ``example=``)."""
        if self.example is None:
            return {}
        return {next(iter(self.openapi_response())): self.example}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{self.name}({opts})"


class JsonOutput(Output):
    """Any JSON-able result as strict JSON (``application/json``, UTF-8); ``example=`` is an
    answer the OpenAPI document shows (as for every output but the binary ones).

    numpy arrays and scalars, pandas DataFrames (as records), Series and ``pd.NA`` are encoded
    as plain JSON values; a NaN or infinite float anywhere in the result becomes ``null``, so
    every answer parses with a strict JSON parser. ``ensure_ascii=True`` escapes every non-ASCII
    character (``\\u00e9``).
    """

    def __init__(self, ensure_ascii: bool = False, *, example: Any = None) -> None:
        self.ensure_ascii = bool(ensure_ascii)
        self.example = check_example(self.name, example, what="an answer")

    def options(self) -> dict[str, Any]:
        return {"ensure_ascii": True} if self.ensure_ascii else {}

    def render(self, result: Any) -> bytes:
        return json_dumps(result, ensure_ascii=self.ensure_ascii)

    def openapi_response(self) -> dict[str, Any]:
        return {_JSON: {"schema": {"description": "any JSON value; NaN and infinities are null"}}}


#: BentoML 0.x names of the JSON output
JsonSerializableOutput = JsonOutput


class DefaultOutput(Output):
    """The input adapter's default output (what an API without ``output=`` answers with)."""

    def for_input(self, adapter: Adapter) -> Output:
        return adapter.default_output()


class NdarrayOutput(Output):
    """An array (or anything ``numpy.asarray`` takes) as nested JSON lists, cast to ``dtype``
    first when given; NaN and infinities become ``null``."""

    def __init__(self, dtype: str | None = None, *, example: Any = None) -> None:
        self.example = check_example(self.name, example, what="an answer")
        self.dtype = None
        if dtype is not None:
            import numpy as np

            try:
                self.dtype = np.dtype(dtype).name
            except TypeError as exc:
                raise InvalidArgument(f"NdarrayOutput(dtype={dtype!r}) is not a numpy dtype") from exc

    def options(self) -> dict[str, Any]:
        return {"dtype": self.dtype} if self.dtype else {}

    def render(self, result: Any) -> bytes:
        import numpy as np

        try:
            array = np.asarray(result, dtype=self.dtype)
        except (TypeError, ValueError) as exc:
            wanted = f"a {self.dtype} array" if self.dtype else "an array"
            raise InferenceError(
                f"NdarrayOutput cannot make {wanted} of the {type(result).__name__} result", detail=str(exc)
            ) from exc
        return json_dumps(array)

    def openapi_response(self) -> dict[str, Any]:
        item = _json_type(self.dtype)
        description = f"an array of {self.dtype or 'numbers'} as nested lists; NaN and infinities are null"
        schema: dict[str, Any] = {"type": "array", "items": {}, "description": description}
        if item:
            schema["items"] = {"oneOf": [{"type": item, "nullable": True}, {"type": "array", "items": {}}]}
        return {_JSON: {"schema": schema}}


def _json_type(dtype: str | None) -> str | None:
    if dtype is None:
        return None
    import numpy as np

    kind = np.dtype(dtype).kind
    return {"b": "boolean", "i": "integer", "u": "integer", "f": "number"}.get(kind, "string")


class TextOutput(Output):
    """A ``str`` result as ``text/plain; charset=utf-8``."""

    media_type = "text/plain; charset=utf-8"

    def __init__(self, *, example: str | None = None) -> None:
        if example is not None and not isinstance(example, str):
            raise InvalidArgument(f"TextOutput(example=...) must be a str, got {type(example).__name__}")
        self.example = example

    def render(self, result: Any) -> bytes:
        if not isinstance(result, str):
            raise InferenceError(
                f"TextOutput renders a str; the API returned a {type(result).__name__}",
                detail="return a str, or use JsonOutput() for other values",
            )
        return result.encode("utf-8", errors="replace")  # a lone surrogate becomes "?"

    def openapi_response(self) -> dict[str, Any]:
        return {"text/plain": {"schema": {"type": "string"}}}


class ClipperOutput(Output):
    """The answer of a Clipper input type over HTTP, as Clipper's query frontend gives it
    (``{"query_id", "output", "default"}``, or ``{"batch_predictions": [...]}``): rendered by
    the Clipper input adapter, which also turns each result into Clipper's output string."""

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter

    def for_input(self, adapter: Adapter) -> Output:
        if adapter is not self.adapter:
            raise InvalidArgument("ClipperOutput is the answer of a Clipper API; leave output= out")
        return self

    def to_http(self, result: Any, request: HttpRequest, payload: Any = None) -> HttpResponse:
        answer = self.adapter.to_http(result, payload)
        if b"NaN" in answer.body or b"Infinity" in answer.body:
            # an output text "NaN" reads back as a float NaN, which Python's json writes bare:
            # written again strictly, as null (a string that merely contains the word is unchanged)
            answer = HttpResponse(json_dumps(json.loads(answer.body)), answer.status, answer.media_type)
        return answer

    def openapi_response(self) -> dict[str, Any]:
        return self.adapter.openapi_response()

    def __repr__(self) -> str:
        return "ClipperOutput()"
