"""``FileOutput`` and ``ImageOutput``: returned bytes sent as they are, with a content type."""

from __future__ import annotations

from typing import Any

from bentolite.adapters.base import HttpRequest, HttpResponse
from bentolite.adapters.outputs import Output
from bentolite.exceptions import InferenceError, InvalidArgument


class FileOutput(Output):
    """Returned ``bytes`` (or ``bytearray``, ``memoryview``, a binary file object) sent as they
    are, with the content type ``content_type``."""

    def __init__(self, content_type: str = "application/octet-stream") -> None:
        media, sep, rest = content_type.partition("/")
        if not sep or not media.strip() or not rest.strip() or any(c in content_type for c in "\r\n,"):
            raise InvalidArgument(
                f"{type(self).__name__}(content_type={content_type!r}) is not a media type "
                "such as 'image/png'"
            )
        self.content_type = content_type.strip()

    @property
    def media_type(self) -> str:  # type: ignore[override]
        return self.content_type

    def options(self) -> dict[str, Any]:
        return {"content_type": self.content_type}

    def render(self, result: Any) -> bytes:
        if isinstance(result, (bytes, bytearray, memoryview)):
            return bytes(result)
        read = getattr(result, "read", None)
        if callable(read):
            try:
                data = read()
            finally:
                close = getattr(result, "close", None)
                if callable(close):
                    close()
            if isinstance(data, (bytes, bytearray)):
                return bytes(data)
        raise InferenceError(
            f"{self.name} sends bytes; the API returned a {type(result).__name__}",
            detail="return bytes (or a file opened in binary mode)",
        )

    def openapi_response(self) -> dict[str, Any]:
        return {self.content_type.split(";")[0]: {"schema": {"type": "string", "format": "binary"}}}


#: leading bytes of the image formats ImageOutput recognises -> subtype
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


class ImageOutput(FileOutput):
    """Image bytes, sent as ``image/<extension_format>`` (``"png"``, ``"jpeg"``, ...).

    With ``extension_format=None`` the type is read from the image's first bytes (PNG, JPEG, GIF,
    WebP, BMP, TIFF); bytes of no known image format are then an error.
    """

    def __init__(self, extension_format: str | None = None) -> None:
        self.extension_format = None
        if extension_format is not None:
            fmt = extension_format.lower().lstrip(".")
            fmt = "jpeg" if fmt == "jpg" else fmt
            super().__init__(f"image/{fmt}")
            self.extension_format = fmt
        else:
            self.content_type = "image/*"

    def options(self) -> dict[str, Any]:
        return {"extension_format": self.extension_format} if self.extension_format else {}

    def to_http(self, result: Any, request: HttpRequest, payload: Any = None) -> HttpResponse:
        body = self.render(result)
        if self.extension_format:
            return HttpResponse(body, media_type=self.content_type)
        return HttpResponse(body, media_type=f"image/{sniff_image(body)}")

    def openapi_response(self) -> dict[str, Any]:
        return {self.content_type: {"schema": {"type": "string", "format": "binary"}}}


def sniff_image(data: bytes) -> str:
    """The image subtype (``"png"``...) of ``data`` from its first bytes."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for magic, subtype in _IMAGE_MAGIC:
        if data.startswith(magic):
            return subtype
    raise InferenceError(
        "ImageOutput() cannot tell the returned bytes' image format (not PNG, JPEG, GIF, WebP, BMP or TIFF)",
        detail="name it: ImageOutput(extension_format='png')",
    )
