"""``FileInput``: a file's raw bytes."""

from __future__ import annotations

from typing import Any

from bentolite.adapters.base import Adapter, HttpRequest
from bentolite.adapters.multipart import first_file
from bentolite.exceptions import BadInput


class FileInput(Adapter):
    """The bytes of one file.

    Over HTTP: an ``application/octet-stream`` (or ``image/*``, ``audio/*``, ``video/*``,
    ``application/pdf``) body, or ``multipart/form-data`` whose first file part (else its first
    part) is used; the form is read within the server's part limits (``adapters/multipart.py``).
    Batched calls give the function a list of ``bytes``, one per request.
    """

    accepts = (
        "application/octet-stream",
        "multipart/form-data",
        "image/*",
        "audio/*",
        "video/*",
        "application/pdf",
    )

    def from_direct(self, value: Any) -> Any:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        if hasattr(value, "read"):
            return value.read()
        if isinstance(value, str):
            with open(value, "rb") as f:
                return f.read()
        raise BadInput(f"FileInput takes bytes, a file object or a path, got {type(value).__name__}")

    def from_http(self, request: HttpRequest) -> Any:
        self.check_media_type(request)
        if request.media_type != "multipart/form-data":
            return request.body
        boundary = request.params.get("boundary")
        if not boundary:
            raise BadInput("multipart/form-data request has no boundary parameter")
        part = first_file(request.body, boundary, request.form_limits)
        if part is None:
            raise BadInput("multipart/form-data request holds no file part")
        return part.data

    def openapi_request(self) -> dict[str, Any]:
        return {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        }
