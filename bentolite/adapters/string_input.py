"""``StringInput``: a text body as ``str``."""

from __future__ import annotations

from typing import Any

from bentolite.adapters.base import Adapter, HttpRequest
from bentolite.exceptions import BadInput


class StringInput(Adapter):
    """Text. Over HTTP any ``text/*`` body, decoded with its charset (UTF-8 by default).

    Batched calls give the function a list of strings, one per request.
    """

    accepts = ("text/*",)

    def from_direct(self, value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode("utf-8")
        return value

    def from_http(self, request: HttpRequest) -> Any:
        self.check_media_type(request)
        charset = request.params.get("charset", "utf-8")
        try:
            return request.body.decode(charset)
        except (UnicodeDecodeError, LookupError) as exc:
            raise BadInput(f"request body is not valid {charset} text", detail=str(exc)) from exc

    def openapi_request(self) -> dict[str, Any]:
        return {"text/plain": {"schema": {"type": "string"}}}

    def derived_examples(self) -> dict[str, Any]:
        return {"text/plain": "text"}
