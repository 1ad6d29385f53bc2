"""``NdarrayInput``: a JSON (nested) list as a numpy array of one dtype."""

from __future__ import annotations

from typing import Any

from bentolite.adapters.base import Adapter, HttpRequest, load_json_body, split_rows
from bentolite.exceptions import BadInput, InvalidArgument


class NdarrayInput(Adapter):
    """A numpy array of ``dtype`` (default float32), optionally checked against ``shape``
    (``-1`` or None for any size in that axis).

    Each item converts strictly: a float dtype takes JSON numbers that fit it, an integer dtype
    whole numbers in its range, bool only ``true``/``false``; the nested lists must be
    rectangular. ``NaN``/``Infinity`` (and ``null``, read as NaN) are refused unless
    ``allow_nan=True``. An item that does not convert is a 400 naming its index.

    Axis 0 is the batch axis: batched calls concatenate requests along it and split the result
    back by each request's number of rows.
    """

    def __init__(
        self,
        dtype: str = "float32",
        shape: tuple[int | None, ...] | None = None,
        *,
        allow_nan: bool = False,
        example: Any = None,
    ) -> None:
        import numpy as np

        from bentolite.adapters.cells import CellType

        super().__init__(example=example)
        try:
            self.dtype = np.dtype(dtype).name
        except TypeError as exc:
            raise InvalidArgument(f"NdarrayInput(dtype={dtype!r}) is not a numpy dtype") from exc
        self._cell = CellType(self.dtype)
        self.shape = tuple(shape) if shape is not None else None
        if self.shape is not None and not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= -1) for d in self.shape
        ):
            raise InvalidArgument(
                f"NdarrayInput(shape={shape!r}): each axis is a size, or -1/None for any size"
            )
        self.allow_nan = bool(allow_nan)

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"dtype": self.dtype}
        if self.shape is not None:
            opts["shape"] = list(self.shape)
        if self.allow_nan:
            opts["allow_nan"] = True
        return opts

    def from_direct(self, value: Any) -> Any:
        return self._convert(value, bools_possible=True)

    def _convert(self, value: Any, *, bools_possible: bool) -> Any:
        if not bools_possible and isinstance(value, list):
            fast = self._plain_numbers(value)
            if fast is not None:
                return self._check_shape(fast)
        return self._check_shape(self._items(value))

    def _plain_numbers(self, value: list[Any]) -> Any:
        """Nested lists of plain numbers (no booleans: the caller knows) in one numpy step, or
        None when anything is off: the general path then names it."""
        import numpy as np

        try:
            found = np.array(value)
        except (ValueError, OverflowError):
            return None
        target = np.dtype(self.dtype)
        if found.dtype.kind == "f" and target.kind == "f":
            if target.itemsize < found.dtype.itemsize and found.size and not self.allow_nan:
                limit = np.finfo(target).max  # a narrower float may overflow: the general path says so
                if np.abs(found).max() > limit:
                    return None
            return found.astype(target, copy=False)
        if found.dtype.kind == "i" and target.kind in "fiu":
            if target.kind in "iu" and found.size:
                info = np.iinfo(target)
                if found.min() < info.min or found.max() > info.max:
                    return None
            return found.astype(target, copy=False)
        return None

    def _items(self, value: Any) -> Any:
        import numpy as np

        from bentolite.adapters.cells import to_array

        try:
            items = np.array(value, dtype=object)
        except (TypeError, ValueError) as exc:
            raise BadInput(f"input cannot be read as a {self.dtype} array", detail=str(exc)) from exc
        shape = items.shape

        def where(i: int) -> str:
            return f"item {[int(x) for x in np.unravel_index(i, shape)]}" if shape else "the input"

        flat = items.ravel().tolist()
        nested = {list, tuple} & set(map(type, flat))
        for i, item in enumerate(flat if nested else ()):
            if isinstance(item, (list, tuple)):
                raise BadInput(
                    f"the nested lists do not form a rectangular {self.dtype} array "
                    f"(their lengths differ at {where(i)})"
                )
        arr = to_array(flat, self._cell, allow_nan=self.allow_nan, where=where).reshape(shape)
        if arr.dtype != self.dtype:
            arr = arr.astype(self.dtype)
        return arr

    def _check_shape(self, arr: Any) -> Any:
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
        value = load_json_body(request, allow_nan=self.allow_nan)
        # numpy reads true as 1 beside numbers: only a body without the words takes the fast path
        return self._convert(value, bools_possible=b"true" in request.body or b"false" in request.body)

    def merge(self, payloads: list[Any]) -> tuple[Any, list[int]]:
        import numpy as np

        arrays = [p if p.ndim else p.reshape(1) for p in payloads]
        return np.concatenate(arrays, axis=0), [len(a) for a in arrays]

    def batch_size(self, payload: Any) -> int:
        return len(payload) if payload.ndim else 1

    def split(self, result: Any, sizes: list[int]) -> list[Any]:
        return split_rows(result, sizes)

    # --- OpenAPI -------------------------------------------------------------------------------
    def _item_schema(self) -> dict[str, Any]:
        schema = dict(self._cell.json_schema())
        if self.allow_nan and self._cell.kind == "float":
            schema["nullable"] = True
        return schema

    def openapi_request(self) -> dict[str, Any]:
        item = self._item_schema()
        if self.shape is None:
            schema: dict[str, Any] = {
                "type": "array",
                "items": {"anyOf": [item, {"type": "array", "items": {}}]},
                "description": f"{self.dtype} values, as nested arrays of any (rectangular) shape",
            }
        else:
            schema = item
            for size in reversed(self.shape):
                schema = {"type": "array", "items": schema}
                if size not in (None, -1):
                    schema.update(minItems=size, maxItems=size)
            shape = ", ".join("any" if d in (None, -1) else str(d) for d in self.shape)
            schema["description"] = f"{self.dtype} values of shape [{shape}]"
        return {"application/json": {"schema": schema}}

    def derived_examples(self) -> dict[str, Any]:
        example: Any = self._cell.example()
        for size in reversed(self.shape if self.shape is not None else (1,)):
            example = [example] * (1 if size in (None, -1) else size)
        return {"application/json": example}
