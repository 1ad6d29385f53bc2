"""Strict JSON encoding of what user functions return.

Every JSON answer of the server parses with a strict (RFC 8259) parser: a float that is NaN or
infinite, anywhere in a result (a Python float, a numpy value or array, a pandas cell), is written
as ``null``, never as the bare ``NaN``/``Infinity`` that Python's ``json`` module writes by default.

Values are turned into JSON the same way whichever encoder runs:

* numpy arrays and scalars as their ``tolist()`` values (``float32`` and ``float16`` widened to
  ``float64`` first, so a ``float32`` 0.1 is written as ``0.10000000149011612``, the value it holds);
* a pandas ``DataFrame`` as a list of row objects (records), a ``Series`` or ``Index`` as a list,
  ``pd.NA``/``NaT`` as ``null``;
* ``bytes`` as UTF-8 text (undecodable bytes replaced), sets and other iterables as lists;
* dict keys as strings (``str(key)``).

:func:`json_dumps` encodes with orjson, which writes these values several times faster than the
standard library (``benchmarks/json_bench.py``), and falls back to the standard library for what
orjson refuses (integers past 64 bits, non-string dict keys, lone surrogates), so both give the
same JSON values.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import orjson

from bentolite.exceptions import InferenceError


def jsonable(obj: Any) -> Any:
    """Turn a result into plain JSON values (dict, list, str, int, float, bool, None), with
    NaN and infinities as None."""
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    plain = _plain(obj)
    if plain is not _NOT_PLAIN:
        return jsonable(plain)
    raise InferenceError(f"result of type {type(obj).__name__} cannot be rendered as JSON")


_NOT_PLAIN = object()


def _plain(obj: Any) -> Any:
    """One conversion step of a value that is not a JSON type, or ``_NOT_PLAIN``."""
    module = type(obj).__module__
    if module.startswith("numpy"):
        dtype = getattr(obj, "dtype", None)
        if dtype is not None and dtype.kind == "f" and dtype.itemsize < 8:
            obj = obj.astype("float64")
        return obj.tolist() if hasattr(obj, "tolist") else obj.item()
    if module.startswith("pandas"):
        import pandas as pd

        if isinstance(obj, pd.DataFrame):
            if not all(isinstance(c, str) for c in obj.columns):
                # keys as str(column) now, so orjson need not give the whole result up to json
                obj = obj.set_axis([str(c) for c in obj.columns], axis=1)
            return obj.to_dict(orient="records")
        if isinstance(obj, (pd.Series, pd.Index)):
            return obj.tolist()
        if obj is pd.NA or obj is pd.NaT:
            return None
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj).decode("utf-8", errors="replace")
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__iter__"):
        return list(obj)
    return _NOT_PLAIN


#: numpy dtype kinds orjson writes natively with the same values as ``tolist()`` (floats widened)
_NATIVE_KINDS = frozenset("biuf")


def _orjson_default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    if _is_native_array(obj):
        # the array written by orjson's C code and spliced in as it is: no Python list in between
        return orjson.Fragment(_native_array_json(obj))
    plain = _plain(obj)
    if plain is _NOT_PLAIN:
        raise TypeError(type(obj).__name__)
    return plain


#: numpy.ndarray, once numpy is imported (this module does not import it)
_ndarray: Any = None


def _array_type() -> Any:
    global _ndarray
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        _ndarray = numpy.ndarray
    return _ndarray


def _native_array_json(obj: Any) -> bytes:
    """A numpy array of a native kind (``_NATIVE_KINDS``, at least 1-D) as JSON, written by
    orjson's C code, with the values ``tolist()`` gives (narrow floats widened first)."""
    dtype = obj.dtype
    if dtype.kind == "f" and dtype.itemsize < 8:
        obj = obj.astype("float64")
    elif not obj.flags.c_contiguous or not dtype.isnative:
        obj = obj.astype(dtype.newbyteorder("="), order="C")
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)


def _is_native_array(obj: Any) -> bool:
    """Whether orjson writes ``obj`` itself: a numpy array (not a subclass) of a native kind, at
    least 1-D."""
    return type(obj) is (_ndarray or _array_type()) and obj.dtype.kind in _NATIVE_KINDS and obj.ndim > 0


def json_dumps(obj: Any, *, ensure_ascii: bool = False) -> bytes:
    """Compact, strict UTF-8 JSON of a result (see the module docstring); ``ensure_ascii``
    escapes every non-ASCII character."""
    if not ensure_ascii:
        if _is_native_array(obj):
            return _native_array_json(obj)  # a whole array (most results): no hook at all
        try:
            return orjson.dumps(obj, default=_orjson_default)
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            pass
    return stdlib_dumps(obj, ensure_ascii=ensure_ascii)


def stdlib_dumps(obj: Any, *, ensure_ascii: bool = False) -> bytes:
    """:func:`json_dumps` with the standard library only (the fallback; slower, same values).
    A lone surrogate, which UTF-8 cannot hold, is written escaped (``\\ud800``)."""
    value = jsonable(obj)
    if not ensure_ascii:
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except UnicodeEncodeError:
            pass
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")
