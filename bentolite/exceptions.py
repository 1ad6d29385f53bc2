"""The one error hierarchy of bentolite.

Every error a user can cause or act on is a :class:`BentoliteError`. Each subclass carries the
CLI exit code and the HTTP status it maps to, so the CLI and the server translate errors in one
place each.
"""

from __future__ import annotations

from typing import Any


class BentoliteError(Exception):
    """Base of every bentolite error. The message says what is wrong and how to fix it."""

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def extra_body(self) -> dict[str, Any]:
        """Keys the JSON error answer carries besides ``error`` and ``detail``."""
        return {}


class InvalidArgument(BentoliteError):
    """A value given by the user (argument, option, decorator parameter) is not acceptable."""

    exit_code = 2
    http_status = 400


class ConfigError(InvalidArgument):
    """A configuration file (bentofile.yaml, bentolite.yaml) or environment variable is invalid."""


class NotFound(BentoliteError):
    """A bundle, tag, API or file that was asked for does not exist."""

    exit_code = 1
    http_status = 404


class ArtifactError(BentoliteError):
    """An artifact could not be packed, saved or loaded."""


class BundleError(BentoliteError):
    """A bundle could not be written, read or imported."""


class BundleExists(BundleError):
    """The bundle's tag (name and version) is already taken in the store or on disk."""

    exit_code = 2
    http_status = 409


class ServiceError(BentoliteError):
    """A service class is defined incorrectly (wrong decorator use, missing API)."""

    exit_code = 2


class BadInput(BentoliteError):
    """A prediction input is malformed or has the wrong type."""

    exit_code = 2
    http_status = 400


class ClipperQueryError(BadInput):
    """A query body Clipper's query frontend refuses, answered the way that frontend answers it:
    HTTP 400 ``{"error": "Json error", "cause": "<what is wrong>"}``."""

    def __init__(self, cause: str) -> None:
        super().__init__("Json error", detail=cause)
        self.cause = cause

    def extra_body(self) -> dict[str, Any]:
        return {"cause": self.cause}


class UnsupportedMediaType(BadInput):
    """A request body has a content type the API's adapter does not accept."""

    http_status = 415


class NotAcceptable(BadInput):
    """A request's ``Accept`` header allows none of the content types the API answers in."""

    http_status = 406


class PayloadTooLarge(BadInput):
    """A request body is larger than the server accepts."""

    http_status = 413


class UnsupportedEncoding(UnsupportedMediaType):
    """A request body has a ``Content-Encoding`` the server does not decode."""


class TooManyParts(PayloadTooLarge):
    """A multipart body holds more parts than the server accepts."""


class PartHeaderTooLarge(BadInput):
    """One part of a multipart body has a larger header block than the server accepts."""


class RequestHeaderTooLarge(BadInput):
    """A request's header block is larger than the server accepts."""

    http_status = 431


class UriTooLong(BadInput):
    """A request line (method, URL, version) is longer than the server accepts."""

    http_status = 414


class RequestTimeout(BadInput):
    """A client took longer than the server allows to send its request headers."""

    http_status = 408


class Overloaded(BentoliteError):
    """The server cannot answer right now; the client may retry after ``retry_after`` seconds.

    Every answer with this error carries a ``Retry-After`` header.
    """

    http_status = 503
    retry_after: int = 1

    def __init__(self, message: str, *, detail: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message, detail=detail)
        if retry_after is not None:
            self.retry_after = retry_after


class InferenceError(BentoliteError):
    """The user's prediction function raised, or returned something its adapter cannot render."""

    http_status = 500


class BuildError(BentoliteError):
    """A bundle build or an image build failed."""


class DeployError(BentoliteError):
    """Deploying to a Clipper cluster failed."""


class ModelVersionExists(DeployError):
    """Clipper already has this model name at this version; a deploy needs a new version."""

    def __init__(self, message: str, *, name: str, version: str, suggestion: str) -> None:
        super().__init__(message)
        self.name = name
        self.version = version
        #: a version Clipper does not have yet
        self.suggestion = suggestion
