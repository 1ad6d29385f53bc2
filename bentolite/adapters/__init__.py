"""Input and output types of an API: how a request becomes the argument of the user's function
(input adapters), and how its result becomes the answer (output adapters, ``outputs.py``).

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
from bentolite.adapters.dataframe_output import DataframeOutput
from bentolite.adapters.file_input import FileInput
from bentolite.adapters.file_output import FileOutput, ImageOutput
from bentolite.adapters.json_input import JsonInput
from bentolite.adapters.ndarray_input import NdarrayInput
from bentolite.adapters.outputs import (
    ClipperOutput,
    DefaultOutput,
    JsonOutput,
    JsonSerializableOutput,
    NdarrayOutput,
    Output,
    TextOutput,
)
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

#: every built-in output adapter by the name recorded in bentolite.yaml
OUTPUTS = {
    cls.__name__: cls
    for cls in (
        JsonOutput,
        DataframeOutput,
        NdarrayOutput,
        TextOutput,
        FileOutput,
        ImageOutput,
        ClipperOutput,
    )
}

#: BentoML 0.x's name of the output base class
BaseOutputAdapter = Output

__all__ = [
    "ADAPTERS",
    "OUTPUTS",
    "Adapter",
    "BaseOutputAdapter",
    "ClipperBytesInput",
    "ClipperDoublesInput",
    "ClipperFloatsInput",
    "ClipperInput",
    "ClipperIntsInput",
    "ClipperOutput",
    "ClipperStringsInput",
    "DataframeInput",
    "DataframeOutput",
    "DefaultOutput",
    "FileInput",
    "FileOutput",
    "HttpRequest",
    "HttpResponse",
    "ImageOutput",
    "JsonInput",
    "JsonOutput",
    "JsonSerializableOutput",
    "NdarrayInput",
    "NdarrayOutput",
    "Output",
    "StringInput",
    "TextOutput",
]
