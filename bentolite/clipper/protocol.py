"""Clipper's model-container RPC protocol, version 3: codes and the frames of every message.

Pure bytes in, bytes out, no sockets. Builders return the list of frames a socket sends; the
parsers, in :mod:`bentolite.clipper.parsing`, take the list of frames a socket received and
raise :class:`ProtocolError` naming the first thing that is wrong.

Every frame list here starts with the empty delimiter frame. The routing-id frame a ROUTER
socket adds in front is never part of it: the frontend side strips it before parsing and
prepends it after building.

Container -> frontend: :func:`build_heartbeat`, :func:`build_container_metadata`,
:func:`build_prediction_response`.

Frontend -> container: :func:`build_heartbeat_reply`, :func:`build_prediction_request`.

All integers are little-endian; each field is its own frame.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Union

from bentolite.exceptions import BentoliteError

RPC_VERSION = 3

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

#: frames of a prediction request before its N content frames
REQUEST_PREFIX_FRAMES = 7
#: frames of a prediction response before its N output frames
RESPONSE_PREFIX_FRAMES = 5


class ProtocolError(BentoliteError):
    """A message does not follow Clipper's RPC v3 frame layout."""


class MessageType(enum.IntEnum):
    NEW_CONTAINER = 0
    CONTAINER_CONTENT = 1
    HEARTBEAT = 2


class HeartbeatType(enum.IntEnum):
    KEEP_ALIVE = 0
    REQUEST_CONTAINER_METADATA = 1


class RequestType(enum.IntEnum):
    PREDICT = 0
    #: declared by Clipper but never sent by its frontend
    FEEDBACK = 1


class InputType(enum.IntEnum):
    BYTES = 0
    INTS = 1
    FLOATS = 2
    DOUBLES = 3
    STRINGS = 4

    @classmethod
    def from_name(cls, name: str) -> InputType:
        """Parse a ``CLIPPER_INPUT_TYPE`` value the way Clipper's containers accept it."""
        found = _BY_NAME.get(name.lower())
        if found is None:
            accepted = ", ".join(alias for aliases in _ALIASES.values() for alias in aliases)
            raise ValueError(f"unknown Clipper input type {name!r}; accepted: {accepted}")
        return found

    @property
    def label(self) -> str:
        """The canonical name, as adapters spell ``clipper_input_type`` (``"doubles"``)."""
        return _ALIASES[self][-1]

    @property
    def dtype(self) -> str | None:
        """Numpy dtype of one element on the wire; None for strings (UTF-8 text)."""
        return _DTYPES[self]

    @property
    def itemsize(self) -> int:
        """Bytes per element; every input of this type is a whole number of elements."""
        return _ITEMSIZES[self]


# The last alias of each type is its canonical label.
_ALIASES = {
    InputType.BYTES: ("b", "byte", "bytes"),
    InputType.INTS: ("i", "int", "integer", "integers", "ints"),
    InputType.FLOATS: ("f", "float", "floats"),
    InputType.DOUBLES: ("d", "double", "doubles"),
    InputType.STRINGS: ("s", "str", "strs", "string", "strings"),
}
_BY_NAME = {alias: kind for kind, aliases in _ALIASES.items() for alias in aliases}
_DTYPES = {
    InputType.BYTES: "i1",
    InputType.INTS: "<i4",
    InputType.FLOATS: "<f4",
    InputType.DOUBLES: "<f8",
    InputType.STRINGS: None,
}
_ITEMSIZES = {
    InputType.BYTES: 1,
    InputType.INTS: 4,
    InputType.FLOATS: 4,
    InputType.DOUBLES: 8,
    InputType.STRINGS: 1,
}


# --- messages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heartbeat:
    """Container -> frontend: "I am alive" (and, from an unknown container, "who am I?")."""


@dataclass(frozen=True)
class ContainerMetadata:
    """Container -> frontend: the new-container message that registers a replica."""

    model_name: str
    model_version: str
    input_type: InputType


@dataclass(frozen=True)
class PredictionResponse:
    """Container -> frontend: one output per input of request ``msg_id``, in input order."""

    msg_id: int
    outputs: list[bytes]


@dataclass(frozen=True)
class HeartbeatReply:
    """Frontend -> container: keep-alive, or a request to (re-)send the container metadata."""

    heartbeat_type: HeartbeatType


class InputFrames(list):  # type: ignore[type-arg]
    """The input frames of one prediction request, in input order (bytes-like objects).

    When a reader received every input into one buffer, :attr:`joined` is that buffer (the
    inputs back to back, each frame a view of its part; for a single input, the frame itself)
    and :attr:`size` the size of every input if they are all equal: a batch of equal inputs is
    then one array without a copy.
    """

    #: set by a reader, after the list is built (a list subclass without an ``__init__`` of its
    #: own is built in C)
    joined: memoryview | None = None
    size: int | None = None


class RequestHead(NamedTuple):
    """What the frames before a prediction request's inputs say."""

    msg_id: int
    input_type: InputType
    #: the size in bytes of each input, as the input header declares it
    sizes: tuple[int, ...]


class PredictionRequest(NamedTuple):
    """Frontend -> container: a batch of inputs to predict on."""

    msg_id: int
    input_type: InputType
    #: the input frames as received (``bytes`` or buffers), without copies of their own
    inputs: InputFrames


#: the frames of the fixed fields, as the builders send them and as readers compare them
VERSION_FRAME = _U32.pack(RPC_VERSION)
CONTENT_FRAME = _U32.pack(MessageType.CONTAINER_CONTENT)
HEARTBEAT_FRAME = _U32.pack(MessageType.HEARTBEAT)
PREDICT_FRAME = _U32.pack(RequestType.PREDICT)

ContainerMessage = Union[Heartbeat, ContainerMetadata, PredictionResponse]
FrontendMessage = Union[HeartbeatReply, PredictionRequest]
Frames = Sequence[bytes]


# --- builders ------------------------------------------------------------------------------


def build_heartbeat() -> list[bytes]:
    return [b"", HEARTBEAT_FRAME]


def build_container_metadata(model_name: str, model_version: str, input_type: InputType) -> list[bytes]:
    return [
        b"",
        _U32.pack(MessageType.NEW_CONTAINER),
        model_name.encode("utf-8"),
        model_version.encode("utf-8"),
        # the frontend parses this frame as decimal text, not as a u32
        str(int(input_type)).encode("ascii"),
        VERSION_FRAME,
    ]


def build_prediction_response(msg_id: int, outputs: Sequence[str | bytes]) -> list[bytes]:
    """Frames answering request ``msg_id``; ``str`` outputs are sent as UTF-8."""
    return response_frames(msg_id, [o.encode("utf-8") if isinstance(o, str) else bytes(o) for o in outputs])


def response_frames(msg_id: int, payloads: list[bytes]) -> list[bytes]:
    """Frames answering request ``msg_id`` with outputs that are bytes already."""
    n = len(payloads)
    header = struct.pack(f"<{1 + n}Q", n, *map(len, payloads))
    return [b"", CONTENT_FRAME, _U32.pack(msg_id), _U64.pack(len(header)), header, *payloads]


def build_heartbeat_reply(heartbeat_type: HeartbeatType) -> list[bytes]:
    return [
        b"",
        VERSION_FRAME,
        HEARTBEAT_FRAME,
        _U32.pack(heartbeat_type),
    ]


def build_prediction_request(msg_id: int, input_type: InputType, inputs: Sequence[bytes]) -> list[bytes]:
    header = struct.pack(f"<{2 + len(inputs)}Q", int(input_type), len(inputs), *map(len, inputs))
    return [
        b"",
        VERSION_FRAME,
        CONTENT_FRAME,
        _U32.pack(msg_id),
        PREDICT_FRAME,
        _U64.pack(len(header)),
        header,
        *inputs,
    ]
