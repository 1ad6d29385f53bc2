"""``NdarrayInput``: a JSON (nested) list as a numpy array of one dtype."""

from __future__ import annotations

from typing import Any

from bentolite.adapters.base import Adapter, HttpRequest, load_json_body, split_rows
from bentolite.exceptions import BadInput, InvalidArgument


class NdarrayInput(Adapter):
    """A numpy array of ``dtype`` (default float32), optionally checked against ``shape``
    (``-1`` or None for any size in that axis).

    Axis 0 is the batch axis: batched calls concatenate requests along it and split the result
    back by each request's number of rows.
    """

    def __init__(self, dtype: str = "float32", shape: tuple[int | None, ...] | None = None) -> None:
        import numpy as np

        try:
            self.dtype = np.dtype(dtype).name
        except TypeError as exc:
            raise InvalidArgument(f"NdarrayInput(dtype={dtype!r}) is not a numpy dtype") from exc
        self.shape = tuple(shape) if shape is not None else None

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"dtype": self.dtype}
        if self.shape is not None:
            opts["shape"] = list(self.shape)
        return opts

    def from_direct(self, value: Any) -> Any:
        import numpy as np

        try:
            arr = np.asarray(value, dtype=self.dtype)
        except (TypeError, ValueError) as exc:
            raise BadInput(f"input cannot be read as a {self.dtype} array", detail=str(exc)) from exc
        if self.shape is not None:
            ok = arr.ndim == len(self.shape) and all(
                want in (None, -1) or want == got for want, got in zip(self.shape, arr.shape)
            )
            if not ok:
                raise BadInput(
                    f"input has shape {list(arr.shape)}; expected {list(self.shape)} (-1 or null = any size)"
                )
        return arr

    def from_http(self, request: HttpRequest) -> Any:
        self.check_media_type(request)
        return self.from_direct(load_json_body(request))

    def merge(self, payloads: list[Any]) -> tuple[Any, list[int]]:
        import numpy as np

        arrays = [p if p.ndim else p.reshape(1) for p in payloads]
        return np.concatenate(arrays, axis=0), [len(a) for a in arrays]

    def batch_size(self, payload: Any) -> int:
        return len(payload) if payload.ndim else 1

    def split(self, result: Any, sizes: list[int]) -> list[Any]:
        return split_rows(result, sizes)

    def openapi_request(self) -> dict[str, Any]:
        return {"application/json": {"schema": {"type": "array", "items": {}}}}
