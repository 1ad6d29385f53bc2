"""Parsers of Clipper's RPC v3 messages: the frames a socket received in, a message out.

Frames may be ``bytes`` or any bytes-like buffer (pyzmq's zero-copy frames, memoryviews). Each
parser raises :class:`~bentolite.clipper.protocol.ProtocolError` naming the first thing that is
wrong: frame count, frame size or field value. A parsed request keeps its input frames as they
were given, without copying them.

* :func:`parse_container_message`: what a container sent (the frontend side);
* :func:`parse_frontend_message`: what the frontend sent (the container side);
* :func:`request_head`: the fields of a prediction request before its inputs, for a reader
  that receives the inputs itself (``sockets.py``).
"""

from __future__ import annotations

import enum
import struct
from functools import reduce
from operator import or_
from typing import TypeVar

from bentolite.clipper.protocol import (
    CONTENT_FRAME,
    PREDICT_FRAME,
    REQUEST_PREFIX_FRAMES,
    RESPONSE_PREFIX_FRAMES,
    RPC_VERSION,
    VERSION_FRAME,
    ContainerMessage,
    ContainerMetadata,
    Frames,
    FrontendMessage,
    Heartbeat,
    HeartbeatReply,
    HeartbeatType,
    InputFrames,
    InputType,
    MessageType,
    PredictionRequest,
    PredictionResponse,
    ProtocolError,
    RequestHead,
    RequestType,
)

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_pack_u64, _unpack_u32 = _U64.pack, _U32.unpack


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


def request_head(msg_id: bytes, request_type: bytes, header_size: bytes, header: bytes) -> RequestHead:
    """Frames 3-6 of a prediction request whose delimiter, version and type frames are right.

    For a reader that receives the input frames itself, knowing their sizes in advance. Raises
    :class:`ProtocolError` as :func:`parse_frontend_message` would for these frames.
    """
    length = len(header)
    # What every well-formed request's head is, checked at once; anything else is taken apart
    # field by field below, to name what is wrong.
    if (
        request_type == PREDICT_FRAME
        and len(msg_id) == 4
        and header_size == _pack_u64(length)
        and length >= 16
        and not length % 8
    ):
        values = struct.unpack(f"<{length // 8}Q", header)
        known = _INPUT_TYPE_CODES.get(values[0])
        sizes = values[2:]
        # Element sizes are powers of two, so the sizes are whole elements if no size has a bit
        # of (size - 1) set: an OR of them all, computed in C.
        if known is not None and values[1] == len(sizes) and not reduce(or_, sizes, 0) & known[1]:
            return RequestHead(_unpack_u32(msg_id)[0], known[0], sizes)  # type: ignore[arg-type]
    return _request_fields([b"", VERSION_FRAME, CONTENT_FRAME, msg_id, request_type, header_size, header])


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


#: input type code -> (member, element size - 1), for :func:`request_head`
_INPUT_TYPE_CODES = {m.value: (m, m.itemsize - 1) for m in InputType}
assert all(m.itemsize & (m.itemsize - 1) == 0 for m in InputType), "element sizes are powers of two"


def _enum(kind: type[_E], value: int, field: str) -> _E:
    member = _MEMBERS[kind].get(value)
    if member is None:
        known = ", ".join(f"{m.value} ({m.name})" for m in kind)
        raise ProtocolError(f"{field} {value} is unknown; expected one of {known}")
    return member  # type: ignore[return-value]
