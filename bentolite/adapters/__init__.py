"""Input types of an API: how a request becomes the argument of the user's function.

Importing this package is cheap: pandas and numpy load only when an adapter first converts data.
"""

from bentolite.adapters.base import Adapter, HttpRequest, HttpResponse
from bentolite.adapters.clipper import (
    ClipperBytesInput,
    ClipperDoublesInput,
    ClipperFloatsInput,
    ClipperInput,
    ClipperIntsInput,
    ClipperStringsInput,
)
from bentolite.adapters.dataframe import DataframeInput
from bentolite.adapters.file_input import FileInput
from bentolite.adapters.json_input import JsonInput
from bentolite.adapters.ndarray_input import NdarrayInput
from bentolite.adapters.string_input import StringInput

#: every built-in adapter by the name recorded in bentolite.yaml
ADAPTERS = {
    cls.__name__: cls
    for cls in (
        DataframeInput,
        JsonInput,
        StringInput,
        FileInput,
        NdarrayInput,
        ClipperBytesInput,
        ClipperIntsInput,
        ClipperFloatsInput,
        ClipperDoublesInput,
        ClipperStringsInput,
    )
}

__all__ = [
    "ADAPTERS",
    "Adapter",
    "ClipperBytesInput",
    "ClipperDoublesInput",
    "ClipperFloatsInput",
    "ClipperInput",
    "ClipperIntsInput",
    "ClipperStringsInput",
    "DataframeInput",
    "FileInput",
    "HttpRequest",
    "HttpResponse",
    "JsonInput",
    "NdarrayInput",
    "StringInput",
]
