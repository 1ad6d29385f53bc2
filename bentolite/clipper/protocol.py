"""Clipper's model-container RPC protocol, version 3: codes and the frames of every message.

Pure bytes in, bytes out, no sockets. Builders return the list of frames a socket sends;
parsers take the list of frames a socket received (``bytes`` or any bytes-like buffer, such as
pyzmq's zero-copy frames) and raise :class:`ProtocolError` naming the first thing that is wrong
(frame count, frame size or field value). A parsed request keeps its input frames as they were
given, without copying them.

Every frame list here starts with the empty delimiter frame. The routing-id frame a ROUTER
socket adds in front is never part of it: the frontend side strips it before parsing and
prepends it after building.

Container -> frontend: :func:`build_heartbeat`, :func:`build_container_metadata`,
:func:`build_prediction_response`; parsed by :func:`parse_container_message`.

Frontend -> container: :func:`build_heartbeat_reply`, :func:`build_prediction_request`;
parsed by :func:`parse_frontend_message`.

All integers are little-endian; each field is its own frame.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar, Union

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
    inputs back to back, each frame a view of its part) and :attr:`size` the size of every
    input if they are all equal: a batch of equal inputs is then one array without a copy.
    """

    __slots__ = ("joined", "size")

    def __init__(self, frames: Any = (), joined: memoryview | None = None, size: int | None = None) -> None:
        super().__init__(frames)
        self.joined = joined
        self.size = size


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


_CONTENT = _U32.pack(MessageType.CONTAINER_CONTENT)
_VERSION_FRAME = _U32.pack(RPC_VERSION)
_PREDICT = _U32.pack(RequestType.PREDICT)

ContainerMessage = Union[Heartbeat, ContainerMetadata, PredictionResponse]
FrontendMessage = Union[HeartbeatReply, PredictionRequest]
Frames = Sequence[bytes]


# --- builders ------------------------------------------------------------------------------


def build_heartbeat() -> list[bytes]:
    return [b"", _U32.pack(MessageType.HEARTBEAT)]


def build_container_metadata(model_name: str, model_version: str, input_type: InputType) -> list[bytes]:
    return [
        b"",
        _U32.pack(MessageType.NEW_CONTAINER),
        model_name.encode("utf-8"),
        model_version.encode("utf-8"),
        # the frontend parses this frame as decimal text, not as a u32
        str(int(input_type)).encode("ascii"),
        _U32.pack(RPC_VERSION),
    ]


def build_prediction_response(msg_id: int, outputs: Sequence[str | bytes]) -> list[bytes]:
    """Frames answering request ``msg_id``; ``str`` outputs are sent as UTF-8."""
    return response_frames(msg_id, [o.encode("utf-8") if isinstance(o, str) else bytes(o) for o in outputs])


def response_frames(msg_id: int, payloads: list[bytes]) -> list[bytes]:
    """Frames answering request ``msg_id`` with outputs that are bytes already."""
    n = len(payloads)
    header = struct.pack(f"<{1 + n}Q", n, *map(len, payloads))
    return [b"", _CONTENT, _U32.pack(msg_id), _U64.pack(len(header)), header, *payloads]


def build_heartbeat_reply(heartbeat_type: HeartbeatType) -> list[bytes]:
    return [
        b"",
        _U32.pack(RPC_VERSION),
        _U32.pack(MessageType.HEARTBEAT),
        _U32.pack(heartbeat_type),
    ]


def build_prediction_request(msg_id: int, input_type: InputType, inputs: Sequence[bytes]) -> list[bytes]:
    header = struct.pack(f"<{2 + len(inputs)}Q", int(input_type), len(inputs), *map(len, inputs))
    return [
        b"",
        _U32.pack(RPC_VERSION),
        _U32.pack(MessageType.CONTAINER_CONTENT),
        _U32.pack(msg_id),
        _U32.pack(RequestType.PREDICT),
        _U64.pack(len(header)),
        header,
        *inputs,
    ]


# --- parsers -------------------------------------------------------------------------------


def parse_container_message(frames: Frames) -> ContainerMessage:
    """Parse what a container sent (the frames after the ROUTER's routing id)."""
    _check_delimiter(frames, min_frames=2)
    msg_type = _enum(MessageType, _u32(frames[1], "message type"), "message type")
    if msg_type is MessageType.HEARTBEAT:
        _check_count(frames, 2, "heartbeat")
        return Heartbeat()
    if msg_type is MessageType.NEW_CONTAINER:
        return _parse_metadata(frames)
    return _parse_response(frames)


def parse_frontend_message(frames: Frames) -> FrontendMessage:
    """Parse what the frontend sent (the frames a DEALER receives)."""
    _check_delimiter(frames, min_frames=3)
    version = _u32(frames[1], "RPC version")
    if version != RPC_VERSION:
        raise ProtocolError(f"RPC version frame is {version}, expected {RPC_VERSION}")
    msg_type = _enum(MessageType, _u32(frames[2], "message type"), "message type")
    if msg_type is MessageType.HEARTBEAT:
        _check_count(frames, 4, "heartbeat reply")
        kind = _enum(HeartbeatType, _u32(frames[3], "heartbeat type"), "heartbeat type")
        return HeartbeatReply(kind)
    if msg_type is MessageType.CONTAINER_CONTENT:
        return _parse_request(frames)
    raise ProtocolError("the frontend sent a new-container message; only containers send those")


def _parse_metadata(frames: Frames) -> ContainerMetadata:
    if len(frames) == 5:
        raise ProtocolError(
            "new-container message has no RPC version frame (5 frames, expected 6); "
            "Clipper does not register such a container"
        )
    _check_count(frames, 6, "new-container message")
    version = _u32(frames[5], "RPC version")
    if version != RPC_VERSION:
        raise ProtocolError(f"new-container message announces RPC version {version}, expected {RPC_VERSION}")
    name = _text(frames[2], "model name")
    model_version = _text(frames[3], "model version")
    code = _text(frames[4], "input type")
    if not (code.isascii() and code.isdigit()):
        raise ProtocolError(f"input type frame must be a decimal number, got {code!r}")
    return ContainerMetadata(name, model_version, _enum(InputType, int(code), "input type"))


def _parse_response(frames: Frames) -> PredictionResponse:
    if len(frames) < RESPONSE_PREFIX_FRAMES:
        raise ProtocolError(
            f"prediction response has {len(frames)} frames, expected at least "
            f"{RESPONSE_PREFIX_FRAMES} (delimiter, type, msg_id, header size, header)"
        )
    msg_id = _u32(frames[2], "msg_id")
    header = frames[4]
    _check_header_size(_u64(frames[3], "output header size"), header, "output")
    values = _u64_array(header, "output header")
    if not values:
        raise ProtocolError("output header is empty; it must start with the output count")
    n = values[0]
    if len(values) != 1 + n:
        raise ProtocolError(
            f"output header holds {len(values)} u64 values for {n} outputs; expected "
            f"{1 + n} (count, then one length per output)"
        )
    _check_count(frames, RESPONSE_PREFIX_FRAMES + n, f"prediction response with {n} outputs")
    outputs = list(frames[RESPONSE_PREFIX_FRAMES:])
    for i, (declared, frame) in enumerate(zip(values[1:], outputs)):
        if declared != len(frame):
            raise ProtocolError(f"output {i} is {len(frame)} bytes but the header says {declared}")
    return PredictionResponse(msg_id, [bytes(f) for f in outputs])


def _parse_request(frames: Frames) -> PredictionRequest:
    if len(frames) < REQUEST_PREFIX_FRAMES:
        raise ProtocolError(
            f"prediction request has {len(frames)} frames, expected at least "
            f"{REQUEST_PREFIX_FRAMES} (delimiter, version, type, msg_id, request type, "
            "header size, header)"
        )
    head = _request_fields(frames)
    n = len(head.sizes)
    _check_count(frames, REQUEST_PREFIX_FRAMES + n, f"prediction request with {n} inputs")
    inputs = InputFrames(frames[REQUEST_PREFIX_FRAMES:])
    sizes = [*map(len, inputs)]
    if sizes != list(head.sizes):
        i = next(i for i, (a, b) in enumerate(zip(sizes, head.sizes)) if a != b)
        raise ProtocolError(f"input {i} is {sizes[i]} bytes but the header says {head.sizes[i]}")
    return PredictionRequest(head.msg_id, head.input_type, inputs)


def parse_request_head(frames: Frames) -> RequestHead:
    """The first :data:`REQUEST_PREFIX_FRAMES` frames of a prediction request, checked.

    For a reader that receives the input frames itself, knowing their sizes in advance.
    """
    if len(frames) == REQUEST_PREFIX_FRAMES:
        # The frames every well-formed request starts with, compared whole; anything else is
        # taken apart field by field below, to name what is wrong.
        empty, version, msg_type, msg_id, request_type, header_size, header = frames
        if (
            not empty
            and version == _VERSION_FRAME
            and msg_type == _CONTENT
            and request_type == _PREDICT
            and len(msg_id) == 4
            and len(header) >= 16
            and header_size == _U64.pack(len(header))
            and not len(header) % 8
        ):
            values = struct.unpack(f"<{len(header) // 8}Q", header)
            input_type = _MEMBERS[InputType].get(values[0])
            sizes = values[2:]
            if input_type is not None and values[1] == len(sizes):
                itemsize = input_type.itemsize
                if itemsize == 1 or not any(size % itemsize for size in set(sizes)):
                    return RequestHead(_U32.unpack(msg_id)[0], input_type, sizes)  # type: ignore[arg-type]
    _check_count(frames, REQUEST_PREFIX_FRAMES, "prediction request head")
    _check_delimiter(frames, REQUEST_PREFIX_FRAMES)
    version_number = _u32(frames[1], "RPC version")
    if version_number != RPC_VERSION:
        raise ProtocolError(f"RPC version frame is {version_number}, expected {RPC_VERSION}")
    kind = _enum(MessageType, _u32(frames[2], "message type"), "message type")
    if kind is not MessageType.CONTAINER_CONTENT:
        raise ProtocolError(f"a {kind.name} message has more than {REQUEST_PREFIX_FRAMES} frames")
    return _request_fields(frames)


def _request_fields(frames: Frames) -> RequestHead:
    """Frames 3-6 of a prediction request: msg_id, request type, header size and header."""
    msg_id = _u32(frames[3], "msg_id")
    request_type = _enum(RequestType, _u32(frames[4], "request type"), "request type")
    if request_type is not RequestType.PREDICT:
        raise ProtocolError(f"request type {request_type.name} is not supported; only PREDICT")
    header = frames[6]
    _check_header_size(_u64(frames[5], "input header size"), header, "input")
    values = _u64_array(header, "input header")
    if len(values) < 2:
        raise ProtocolError(f"input header holds {len(values)} u64 values; it needs input type and count")
    input_type = _enum(InputType, values[0], "input type")
    n = values[1]
    if len(values) != 2 + n:
        raise ProtocolError(
            f"input header holds {len(values)} u64 values for {n} inputs; expected "
            f"{2 + n} (input type, count, then one size per input)"
        )
    sizes = values[2:]
    itemsize = input_type.itemsize
    if itemsize > 1 and any(size % itemsize for size in set(sizes)):
        i = next(i for i, size in enumerate(sizes) if size % itemsize)
        raise ProtocolError(
            f"input {i} is {sizes[i]} bytes, not a whole number of "
            f"{itemsize}-byte {input_type.label} elements"
        )
    return RequestHead(msg_id, input_type, sizes)


# --- field helpers -------------------------------------------------------------------------


def _check_delimiter(frames: Frames, min_frames: int) -> None:
    if len(frames) < min_frames:
        raise ProtocolError(f"message has {len(frames)} frame(s), expected at least {min_frames}")
    if len(frames[0]) != 0:
        raise ProtocolError(f"frame 0 must be the empty delimiter frame, got {len(frames[0])} bytes")


def _check_count(frames: Frames, expected: int, what: str) -> None:
    if len(frames) != expected:
        raise ProtocolError(f"{what} has {len(frames)} frames, expected {expected}")


def _check_header_size(declared: int, header: bytes, what: str) -> None:
    if declared != len(header):
        raise ProtocolError(
            f"{what} header size frame says {declared} bytes but the header frame is {len(header)} bytes"
        )


def _u32(frame: bytes, field: str) -> int:
    if len(frame) != _U32.size:
        raise ProtocolError(f"{field} frame must be 4 bytes (u32), got {len(frame)}")
    return _U32.unpack(frame)[0]


def _u64(frame: bytes, field: str) -> int:
    if len(frame) != _U64.size:
        raise ProtocolError(f"{field} frame must be 8 bytes (u64), got {len(frame)}")
    return _U64.unpack(frame)[0]


def _u64_array(frame: bytes, field: str) -> tuple[int, ...]:
    if len(frame) % _U64.size:
        raise ProtocolError(f"{field} frame is {len(frame)} bytes, not a whole number of u64 values")
    return struct.unpack(f"<{len(frame) // _U64.size}Q", frame)


def _text(frame: bytes, field: str) -> str:
    try:
        text = bytes(frame).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{field} frame is not UTF-8 text: {exc}") from exc
    if not text:
        raise ProtocolError(f"{field} frame is empty")
    return text


_E = TypeVar("_E", bound=enum.IntEnum)


# value -> member of each code enum: a dict lookup per field, not an Enum call
_MEMBERS: dict[type, dict[int, enum.IntEnum]] = {
    kind: {m.value: m for m in kind} for kind in (MessageType, HeartbeatType, RequestType, InputType)
}


def _enum(kind: type[_E], value: int, field: str) -> _E:
    member = _MEMBERS[kind].get(value)
    if member is None:
        known = ", ".join(f"{m.value} ({m.name})" for m in kind)
        raise ProtocolError(f"{field} {value} is unknown; expected one of {known}")
    return member  # type: ignore[return-value]
