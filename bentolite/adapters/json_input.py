"""``JsonInput``: any JSON value, parsed."""

from __future__ import annotations

from typing import Any

from bentolite.adapters.base import Adapter, HttpRequest, load_json_body


class JsonInput(Adapter):
    """A parsed JSON value (dict, list, str, number, bool or None).

    The body is strict JSON: ``NaN``/``Infinity`` literals and numbers beyond a 64-bit float
    are a 400 unless ``allow_nan=True``. ``example`` is the request body the API's OpenAPI
    document shows. Batched calls give the function a list with one parsed value per request and
    expect a list of results of the same length.
    """

    accepts = ("application/json",)

    def __init__(self, *, allow_nan: bool = False, example: Any = None) -> None:
        super().__init__(example=example)
        self.allow_nan = bool(allow_nan)

    def options(self) -> dict[str, Any]:
        return {"allow_nan": True} if self.allow_nan else {}

    def from_http(self, request: HttpRequest) -> Any:
        self.check_media_type(request)
        return load_json_body(request, allow_nan=self.allow_nan)

    def openapi_request(self) -> dict[str, Any]:
        return {"application/json": {"schema": {"description": "any JSON value"}}}
