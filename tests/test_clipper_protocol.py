"""Clipper RPC v3 frames, byte for byte, and the errors for every kind of malformed message."""

from __future__ import annotations

import numpy as np
import pytest
from wire_bytes import doubles, u32, u64

from bentolite.adapters.clipper import BY_INPUT_TYPE
from bentolite.clipper.parsing import parse_container_message, parse_frontend_message
from bentolite.clipper.protocol import (
    RPC_VERSION,
    ContainerMetadata,
    Heartbeat,
    HeartbeatReply,
    HeartbeatType,
    InputType,
    MessageType,
    PredictionRequest,
    PredictionResponse,
    ProtocolError,
    RequestType,
    build_container_metadata,
    build_heartbeat,
    build_heartbeat_reply,
    build_prediction_request,
    build_prediction_response,
)
from bentolite.exceptions import BentoliteError

pytestmark = pytest.mark.timeout(30)


# --- codes -----------------------------------------------------------------------------------


def test_codes_match_clipper():
    assert RPC_VERSION == 3
    assert [m.value for m in MessageType] == [0, 1, 2]
    assert (MessageType.NEW_CONTAINER, MessageType.CONTAINER_CONTENT, MessageType.HEARTBEAT) == (
        0,
        1,
        2,
    )
    assert (HeartbeatType.KEEP_ALIVE, HeartbeatType.REQUEST_CONTAINER_METADATA) == (0, 1)
    assert (RequestType.PREDICT, RequestType.FEEDBACK) == (0, 1)
    assert [(t.name, t.value) for t in InputType] == [
        ("BYTES", 0),
        ("INTS", 1),
        ("FLOATS", 2),
        ("DOUBLES", 3),
        ("STRINGS", 4),
    ]


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["b", "byte", "bytes", "BYTES", "Byte"], InputType.BYTES),
        (["i", "int", "ints", "integer", "integers", "INTEGERS"], InputType.INTS),
        (["f", "float", "floats", "Floats"], InputType.FLOATS),
        (["d", "double", "doubles", "DOUBLES", "D"], InputType.DOUBLES),
        (["s", "str", "strs", "string", "strings", "Strings"], InputType.STRINGS),
    ],
)
def test_input_type_names_clipper_accepts(names, expected):
    for name in names:
        assert InputType.from_name(name) is expected


@pytest.mark.parametrize("name", ["3", "", "doubles ", "float64", "int32", "text", "byts"])
def test_input_type_rejects_other_names(name):
    with pytest.raises(ValueError, match="unknown Clipper input type") as info:
        InputType.from_name(name)
    assert "doubles" in str(info.value)  # the message lists what is accepted


def test_input_type_labels_and_dtypes_agree_with_the_adapters():
    for kind in InputType:
        adapter = BY_INPUT_TYPE[kind.label]
        assert adapter.clipper_input_type == kind.label
        if kind in (InputType.INTS, InputType.FLOATS, InputType.DOUBLES):
            assert np.dtype(adapter.wire_dtype) == np.dtype(kind.dtype)
            assert np.dtype(kind.dtype).itemsize == kind.itemsize
    assert InputType.STRINGS.dtype is None
    assert InputType.BYTES.itemsize == InputType.STRINGS.itemsize == 1


def test_protocol_error_is_a_bentolite_error():
    assert issubclass(ProtocolError, BentoliteError)


# --- byte-exact builders (the layouts verified against Clipper) ------------------------------


def test_heartbeat_frames():
    assert build_heartbeat() == [b"", b"\x02\x00\x00\x00"]


def test_container_metadata_frames():
    frames = build_container_metadata("sum-model", "1", InputType.DOUBLES)
    assert frames == [b"", u32(0), b"sum-model", b"1", b"3", u32(3)]
    # the input type travels as decimal text, the version as a u32 and last
    assert frames[4] == b"3" and frames[-1] == b"\x03\x00\x00\x00"


def test_request_matches_the_verified_example():
    # two doubles vectors of length 2
    frames = build_prediction_request(7, InputType.DOUBLES, [doubles(1, 2), doubles(3, 4)])
    assert [len(f) for f in frames] == [0, 4, 4, 4, 4, 8, 32, 16, 16]
    assert frames[:6] == [b"", u32(3), u32(1), u32(7), u32(0), u64(32)]
    assert frames[6] == u64(3, 2, 16, 16)


def test_response_matches_the_verified_example():
    frames = build_prediction_response(42, ["3.0", "7.0"])
    assert frames == [
        b"",
        bytes.fromhex("01000000"),
        bytes.fromhex("2a000000"),
        bytes.fromhex("1800000000000000"),
        u64(2, 3, 3),
        b"3.0",
        b"7.0",
    ]


def test_response_lengths_count_utf8_bytes_not_characters():
    frames = build_prediction_response(1, ["é", b"\x00\x01", ""])
    assert frames[4] == u64(3, 2, 2, 0)
    assert frames[5:] == ["é".encode(), b"\x00\x01", b""]


def test_heartbeat_reply_frames():
    assert build_heartbeat_reply(HeartbeatType.REQUEST_CONTAINER_METADATA) == [
        b"",
        u32(3),
        u32(2),
        u32(1),
    ]
    assert build_heartbeat_reply(HeartbeatType.KEEP_ALIVE)[-1] == u32(0)


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "inputs"),
    [
        (InputType.BYTES, [b"\x00\xff", b"", b"abc"]),
        (InputType.INTS, [np.arange(3, dtype="<i4").tobytes(), np.arange(1, dtype="<i4").tobytes()]),
        (InputType.FLOATS, [np.ones(5, dtype="<f4").tobytes(), b""]),
        (InputType.DOUBLES, [doubles(1.5), doubles(1, 2, 3, 4)]),
        (InputType.STRINGS, ["héllo".encode(), b"", b"x"]),
    ],
)
def test_request_round_trip(kind, inputs):
    frames = build_prediction_request(2**32 - 1, kind, inputs)
    assert parse_frontend_message(frames) == PredictionRequest(2**32 - 1, kind, inputs)


def test_container_messages_round_trip():
    assert parse_container_message(build_heartbeat()) == Heartbeat()
    meta = build_container_metadata("m", "v1-beta", InputType.STRINGS)
    assert parse_container_message(meta) == ContainerMetadata("m", "v1-beta", InputType.STRINGS)
    response = build_prediction_response(9, ["a", "bc"])
    assert parse_container_message(response) == PredictionResponse(9, [b"a", b"bc"])
    assert parse_container_message(build_prediction_response(3, [])) == PredictionResponse(3, [])


def test_heartbeat_reply_round_trip():
    for kind in HeartbeatType:
        assert parse_frontend_message(build_heartbeat_reply(kind)) == HeartbeatReply(kind)


# --- malformed frontend messages ---------------------------------------------------------------


def good_request() -> list[bytes]:
    return build_prediction_request(5, InputType.DOUBLES, [doubles(1, 2), doubles(3)])


def replaced(frames: list[bytes], index: int, value: bytes) -> list[bytes]:
    frames = list(frames)
    frames[index] = value
    return frames


def with_header(frames: list[bytes], header_index: int, header: bytes) -> list[bytes]:
    """Replace a header frame and the u64 size frame before it, keeping the two consistent."""
    return replaced(replaced(frames, header_index, header), header_index - 1, u64(len(header)))


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([], "0 frame"),
        ([b""], "1 frame"),
        ([b"x", u32(3), u32(2), u32(0)], "empty delimiter"),
        ([b"", u32(2), u32(2), u32(0)], "RPC version frame is 2, expected 3"),
        ([b"", u64(3), u32(2), u32(0)], "RPC version frame must be 4 bytes"),
        ([b"", u32(3), u32(7), u32(0)], "message type 7 is unknown"),
        ([b"", u32(3), u32(0), b"m"], "only containers send"),
        ([b"", u32(3), u32(2)], "heartbeat reply has 3 frames, expected 4"),
        ([b"", u32(3), u32(2), u32(0), b""], "heartbeat reply has 5 frames, expected 4"),
        ([b"", u32(3), u32(2), u32(5)], "heartbeat type 5 is unknown"),
        ([b"", u32(3), u32(2), b"\x00"], "heartbeat type frame must be 4 bytes"),
        (good_request()[:6], "at least 7"),
        (good_request()[:-1], "prediction request with 2 inputs has 8 frames, expected 9"),
        (good_request() + [doubles(1)], "has 10 frames, expected 9"),
        (replaced(good_request(), 3, b"\x05\x00"), "msg_id frame must be 4 bytes"),
        (replaced(good_request(), 4, u32(1)), "FEEDBACK is not supported"),
        (replaced(good_request(), 5, u32(40)), "input header size frame must be 8 bytes"),
        (replaced(good_request(), 5, u64(40)), "header size frame says 40 bytes"),
        (with_header(good_request(), 6, u64(3, 2, 16, 8)[:-1]), "not a whole number of u64"),
        (with_header(good_request(), 6, u64(3)), "1 u64 values; it needs input type and count"),
        (with_header(good_request(), 6, u64(9, 2, 16, 8)), "input type 9 is unknown"),
        (with_header(good_request(), 6, u64(3, 2, 16, 8, 0)), "5 u64 values for 2 inputs"),
        (with_header(good_request(), 6, u64(3, 2, 16, 16)), "input 1 is 8 bytes but the header"),
        (with_header(good_request(), 6, u64(3, 2, 16)), "3 u64 values for 2 inputs"),
        (with_header(good_request(), 6, u64(3, 3, 16, 8, 0)), "3 inputs has 9 frames, expected 10"),
    ],
)
def test_malformed_frontend_messages_name_the_problem(frames, match):
    with pytest.raises(ProtocolError, match=match):
        parse_frontend_message(frames)


def test_header_size_must_match_header():
    frames = good_request()
    frames[5] = u64(len(frames[6]) + 8)
    with pytest.raises(ProtocolError, match="input header size frame says 40 bytes"):
        parse_frontend_message(frames)


def test_inputs_must_be_whole_elements():
    frames = build_prediction_request(1, InputType.DOUBLES, [b"\x00" * 12])
    with pytest.raises(ProtocolError, match="not a whole number of 8-byte doubles"):
        parse_frontend_message(frames)
    frames = build_prediction_request(1, InputType.INTS, [b"\x00" * 6])
    with pytest.raises(ProtocolError, match="4-byte ints"):
        parse_frontend_message(frames)


# --- malformed container messages --------------------------------------------------------------


def good_metadata() -> list[bytes]:
    return build_container_metadata("m", "1", InputType.DOUBLES)


def good_response() -> list[bytes]:
    return build_prediction_response(4, ["1.0", "22"])


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([b""], "1 frame"),
        ([b"\x00", u32(2)], "empty delimiter"),
        ([b"", u32(2), b""], "heartbeat has 3 frames, expected 2"),
        ([b"", u32(9)], "message type 9 is unknown"),
        (good_metadata()[:-1], "no RPC version frame"),
        (good_metadata() + [b""], "new-container message has 7 frames, expected 6"),
        (good_metadata()[:4], "new-container message has 4 frames"),
        (replaced(good_metadata(), 5, u32(2)), "announces RPC version 2, expected 3"),
        (replaced(good_metadata(), 5, b"3"), "RPC version frame must be 4 bytes"),
        (replaced(good_metadata(), 4, u32(3)), "input type frame must be a decimal number"),
        (replaced(good_metadata(), 4, b"doubles"), "decimal number"),
        (replaced(good_metadata(), 4, b"7"), "input type 7 is unknown"),
        (replaced(good_metadata(), 2, b""), "model name frame is empty"),
        (replaced(good_metadata(), 3, b"\xff"), "model version frame is not UTF-8"),
        (good_response()[:4], "at least 5"),
        (good_response() + [b"x"], "with 2 outputs has 8 frames, expected 7"),
        (good_response()[:-1], "with 2 outputs has 6 frames, expected 7"),
        (replaced(good_response(), 2, u64(4)), "msg_id frame must be 4 bytes"),
        (replaced(good_response(), 3, u32(24)), "output header size frame must be 8 bytes"),
        (replaced(good_response(), 3, u64(16)), "output header size frame says 16 bytes"),
        # the layout Clipper's old doc describes: an input-type word before the count
        (with_header(good_response(), 4, u64(3, 2, 3, 2)), "3 outputs has 7 frames, expected 8"),
        (with_header(good_response(), 4, u64(2, 3, 3, 0)), "4 u64 values for 2 outputs"),
        (with_header(good_response(), 4, u64(2, 3, 3)[:-2]), "not a whole number of u64"),
        (with_header(good_response(), 4, u64(2, 3, 3)), "output 1 is 2 bytes but the header says 3"),
        (with_header(good_response(), 4, b""), "output header is empty"),
    ],
)
def test_malformed_container_messages_name_the_problem(frames, match):
    with pytest.raises(ProtocolError, match=match):
        parse_container_message(frames)
