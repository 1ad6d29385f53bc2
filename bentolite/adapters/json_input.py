"""``JsonInput``: any JSON value, parsed."""

from __future__ import annotations

from typing import Any

from bentolite.adapters.base import Adapter


class JsonInput(Adapter):
    """A parsed JSON value (dict, list, str, number, bool or None).

    Batched calls give the function a list with one parsed value per request and expect a list
    of results of the same length.
    """

    accepts = ("application/json",)

    def openapi_request(self) -> dict[str, Any]:
        return {"application/json": {"schema": {"description": "any JSON value"}}}
