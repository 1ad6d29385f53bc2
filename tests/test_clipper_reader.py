"""The runtime's message reader over real loopback ZeroMQ: messages sent back to back, well-formed
and malformed mixed, are each read whole. A well-formed one is parsed exactly as the parser parses
its frames; a malformed one is a ProtocolError and never eats or changes a well-formed message
after it, although the reader receives fields and inputs without asking libzmq whether more
frames remain."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bentolite.clipper.parsing import parse_frontend_message
from bentolite.clipper.protocol import (
    HeartbeatType,
    InputType,
    PredictionRequest,
    ProtocolError,
    build_heartbeat_reply,
    build_prediction_request,
)
from bentolite.clipper.sockets import INTO_LIMIT, MessageReader

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[zmq.Socket, zmq.Socket]]:
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    dealer = context.socket(zmq.DEALER)
    for sock in (router, dealer):
        sock.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer.connect(f"tcp://127.0.0.1:{port}")
    dealer.send(b"hello")
    routing_id, _ = router.recv_multipart()
    try:
        yield router, dealer, routing_id
    finally:
        router.close()
        dealer.close()
        context.term()


SENTINEL = build_prediction_request(2**32 - 1, InputType.STRINGS, [b"end of the batch"])


def read_until_sentinel(dealer: zmq.Socket, reader: MessageReader) -> list[object]:
    """What the reader makes of the messages before :data:`SENTINEL`: each a message or an error."""
    got: list[object] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not reader._next_started and not dealer.poll(100):
            continue
        try:
            message = reader.receive()
        except ProtocolError as exc:
            got.append(exc)
            continue
        if isinstance(message, PredictionRequest) and message.msg_id == 2**32 - 1:
            assert [bytes(f) for f in message.inputs] == [b"end of the batch"]
            return got
        if message is not None:
            got.append(message)
    raise AssertionError(f"no sentinel after 10 s; read {got}")


sizes = st.lists(st.integers(0, 6), min_size=0, max_size=6)


@st.composite
def request(draw: st.DrawFn) -> list[bytes]:
    # doubles only: no input frame is 4 bytes, so inputs never look like the 4-byte fields
    lengths = draw(sizes)
    inputs = [np.arange(k, dtype="<f8").tobytes() for k in lengths]
    if draw(st.booleans()) and lengths:  # now and then one input too large to receive into a buffer
        inputs[0] = bytes(INTO_LIMIT + 8)
    return build_prediction_request(draw(st.integers(0, 2**32 - 2)), InputType.DOUBLES, inputs)


heartbeat = st.sampled_from([build_heartbeat_reply(k) for k in HeartbeatType])
well_formed = st.one_of(request(), heartbeat)


@st.composite
def malformed(draw: st.DrawFn) -> list[bytes]:
    frames = list(draw(well_formed))
    how = draw(st.sampled_from(["truncate", "extend", "resize", "empty input", "field", "garbage"]))
    if how == "truncate":
        frames = frames[: draw(st.integers(1, len(frames) - 1))]
    elif how == "extend":
        frames += [draw(st.binary(min_size=0, max_size=9)) for _ in range(draw(st.integers(1, 3)))]
    elif how in ("resize", "empty input") and len(frames) > 7:
        i = draw(st.integers(7, len(frames) - 1))
        if how == "empty input":
            frames[i] = b""
        else:
            frames[i] = frames[i] + b"\0" * 8 if draw(st.booleans()) or not frames[i] else frames[i][:-8]
    elif how == "field":
        i = draw(st.integers(0, min(len(frames), 7) - 1))
        frames[i] = draw(st.binary(min_size=1, max_size=12))
    else:
        frames = [draw(st.binary(min_size=1, max_size=12)) for _ in range(draw(st.integers(1, 4)))]
    try:
        parse_frontend_message(frames)
    except ProtocolError:
        return frames
    return build_heartbeat_reply(HeartbeatType.KEEP_ALIVE)[:-1]  # a mutation that stayed valid


messages = st.lists(st.one_of(well_formed, malformed()), min_size=1, max_size=8)


def normal(message: object) -> object:
    """A parsed message with its inputs as bytes, for comparing."""
    if isinstance(message, PredictionRequest):
        return (message.msg_id, message.input_type, [bytes(f) for f in message.inputs])
    return message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=messages)
def test_each_message_is_read_whole_and_malformed_ones_harm_nothing_after_them(pair, batch):
    router, dealer, routing_id = pair
    reader = MessageReader(dealer)
    sent = []
    for frames in batch:
        try:
            expected: object = normal(parse_frontend_message(frames))
        except ProtocolError:
            expected = ProtocolError
        sent.append(expected)
        router.send_multipart([routing_id, *frames])
    router.send_multipart([routing_id, *SENTINEL])
    got = read_until_sentinel(dealer, reader)
    # Every well-formed message is read exactly, in order. An empty frame where a field belongs
    # is taken for the next message's delimiter, so a malformed message may be reported as two
    # errors, and two malformed ones in a row as one; each is skipped all the same.
    wanted = [e for e in sent if e is not ProtocolError]
    parsed = [normal(m) for m in got if not isinstance(m, ProtocolError)]
    assert parsed == wanted
    errors = sum(isinstance(m, ProtocolError) for m in got)
    assert (errors > 0) == (len(sent) > len(wanted))


def delimited(frames: list[bytes]) -> bool:
    """The empty delimiter first, and no other empty frame the reader could take for one."""
    return frames[0] == b"" and all(frames[1:])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.one_of(well_formed, malformed().filter(delimited)), min_size=1, max_size=8))
def test_a_malformed_message_is_one_error_worded_as_the_parser_words_it(pair, batch):
    # When only delimiters are empty, the reader knows where each message ends (a message cut
    # short ends at the next delimiter), so each malformed one is exactly one error, naming what
    # the parser names.
    router, dealer, routing_id = pair
    reader = MessageReader(dealer)
    expected = []
    for frames in batch:
        try:
            expected.append(normal(parse_frontend_message(frames)))
        except ProtocolError as exc:
            expected.append(f"ProtocolError: {exc}")
        router.send_multipart([routing_id, *frames])
    router.send_multipart([routing_id, *SENTINEL])
    got = [
        f"ProtocolError: {m}" if isinstance(m, ProtocolError) else normal(m)
        for m in read_until_sentinel(dealer, reader)
    ]
    assert got == expected


def test_small_inputs_arrive_as_views_of_one_buffer(pair):
    router, dealer, routing_id = pair
    inputs = [struct.pack("<2d", 1.5, 2.5), struct.pack("<2d", 3.5, 4.5), struct.pack("<d", 5.5)]
    router.send_multipart([routing_id, *build_prediction_request(7, InputType.DOUBLES, inputs)])
    assert dealer.poll(5000)
    message = MessageReader(dealer).receive()
    assert isinstance(message, PredictionRequest)
    assert [bytes(f) for f in message.inputs] == inputs
    assert bytes(message.inputs.joined) == b"".join(inputs)
    assert message.inputs.size is None  # sizes differ
    assert all(f.obj is message.inputs.joined.obj for f in message.inputs)


def test_a_single_input_is_received_as_its_frames_buffer(pair):
    router, dealer, routing_id = pair
    data = struct.pack("<4d", 1.5, 2.5, 3.5, 4.5)
    router.send_multipart([routing_id, *build_prediction_request(8, InputType.DOUBLES, [data])])
    assert dealer.poll(5000)
    message = MessageReader(dealer).receive()
    assert isinstance(message, PredictionRequest) and message.msg_id == 8
    (frame,) = message.inputs
    assert frame is message.inputs.joined and isinstance(frame, memoryview)  # zero-copy, not bytes
    assert bytes(frame) == data and message.inputs.size == len(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    arrays=st.lists(
        st.lists(st.floats(allow_nan=False, width=64), min_size=0, max_size=5), min_size=1, max_size=6
    ),
    equal=st.booleans(),
)
def test_the_adapter_reads_the_one_buffer_as_it_reads_separate_frames(pair, arrays, equal):
    from bentolite.adapters import ClipperDoublesInput

    router, dealer, routing_id = pair
    if equal:
        arrays = [arrays[0]] * len(arrays)
    inputs = [np.array(a, dtype="<f8").tobytes() for a in arrays]
    router.send_multipart([routing_id, *build_prediction_request(5, InputType.DOUBLES, inputs)])
    assert dealer.poll(5000)
    message = MessageReader(dealer).receive()
    adapter = ClipperDoublesInput()
    got = adapter.from_clipper(message.inputs)
    expected = adapter.from_clipper(inputs)  # plain bytes frames, not one buffer
    assert [g.tolist() for g in got] == [e.tolist() for e in expected]
    assert [g.tolist() for g in got] == [list(map(float, a)) for a in arrays]
    assert all(g.dtype == np.float64 and g.ndim == 1 and not g.flags.writeable for g in got)


def test_a_header_declaring_a_huge_batch_allocates_only_what_arrives(pair):
    import tracemalloc

    router, dealer, routing_id = pair
    declared = 200_000  # 200,000 inputs of 16 KiB: 3.3 GB, were the header believed
    header = struct.pack(f"<{2 + declared}Q", int(InputType.DOUBLES), declared, *[INTO_LIMIT] * declared)
    frames = build_prediction_request(3, InputType.DOUBLES, [])[:6]
    frames[5] = struct.pack("<Q", len(header))
    router.send_multipart([routing_id, *frames, header, bytes(INTO_LIMIT), bytes(INTO_LIMIT)])
    router.send_multipart([routing_id, *SENTINEL])
    reader = MessageReader(dealer)
    tracemalloc.start()
    try:
        got = read_until_sentinel(dealer, reader)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(got) == 1 and isinstance(got[0], ProtocolError)
    assert "has 9 frames, expected 200007" in str(got[0])
    assert peak < 64 * 1024 * 1024  # the header itself is 1.6 MB; nothing near 3.3 GB
