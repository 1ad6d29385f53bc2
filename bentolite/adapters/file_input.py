"""``FileInput``: a file's raw bytes."""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from bentolite.adapters.base import Adapter, HttpRequest
from bentolite.exceptions import BadInput


class FileInput(Adapter):
    """The bytes of one file.

    Over HTTP: an ``application/octet-stream`` (or ``image/*``, ``audio/*``, ``video/*``,
    ``application/pdf``) body, or ``multipart/form-data`` whose first file part is used.
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
        head = f'Content-Type: multipart/form-data; boundary="{boundary}"\r\n\r\n'.encode()
        message = BytesParser(policy=HTTP).parsebytes(head + request.body)
        parts = list(message.iter_parts()) if message.is_multipart() else []
        files = [p for p in parts if p.get_filename() is not None] or parts
        if not files:
            raise BadInput("multipart/form-data request holds no file part")
        return files[0].get_payload(decode=True) or b""

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
