"""The test peer itself: it must behave like Clipper's frontend and catch containers that
break the protocol. Driven by hand-written DEALER sockets, some of them misbehaving on purpose."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import zmq
from clipper_peer import ClipperPeer, ContainerGone, ProtocolViolation, wait_until
from wire_bytes import doubles, u32, u64

from bentolite.clipper.parsing import parse_frontend_message
from bentolite.clipper.protocol import (
    HeartbeatReply,
    HeartbeatType,
    InputType,
    PredictionRequest,
    build_container_metadata,
    build_heartbeat,
    build_prediction_response,
)

pytestmark = pytest.mark.timeout(30)


class HandDealer:
    """A model container written frame by frame, so each test can get one thing wrong."""

    def __init__(self, context: zmq.Context, port: int) -> None:
        self.sock = context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(f"tcp://127.0.0.1:{port}")

    def send(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def recv(self, timeout: float = 5.0) -> list[bytes]:
        if not self.sock.poll(int(timeout * 1000)):
            raise TimeoutError("the peer sent nothing")
        return self.sock.recv_multipart()

    def silent_for(self, seconds: float) -> bool:
        """True if nothing arrives within ``seconds``."""
        return not self.sock.poll(int(seconds * 1000))

    def register(self, metadata: list[bytes] | None = None) -> None:
        self.send(build_heartbeat())
        assert parse_frontend_message(self.recv()) == HeartbeatReply(HeartbeatType.REQUEST_CONTAINER_METADATA)
        self.send(metadata or build_container_metadata("m", "1", InputType.DOUBLES))

    def answer(self, make: Callable[[PredictionRequest], list[bytes]]) -> PredictionRequest:
        request = parse_frontend_message(self.recv())
        assert isinstance(request, PredictionRequest)
        self.send(make(request))
        return request

    def close(self) -> None:
        self.sock.close(linger=0)


@pytest.fixture
def peer() -> Iterator[ClipperPeer]:
    with ClipperPeer(port=0) as peer:
        yield peer


@pytest.fixture
def dealers(peer) -> Iterator[Callable[[], HandDealer]]:
    context = zmq.Context()
    made: list[HandDealer] = []

    def make() -> HandDealer:
        made.append(HandDealer(context, peer.port))
        return made[-1]

    yield make
    for dealer in made:
        dealer.close()
    context.term()


def predict_async(peer: ClipperPeer, inputs: list[bytes], **kwargs):
    """Start a predict call on a worker thread; returns its future."""
    import concurrent.futures

    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(peer.predict, inputs, InputType.DOUBLES, **kwargs)
    pool.shutdown(wait=False)
    return future


def sums(request: PredictionRequest) -> list[bytes]:
    outputs = [str(np.frombuffer(x, "<f8").sum()) for x in request.inputs]
    return build_prediction_response(request.msg_id, outputs)


# --- registration -----------------------------------------------------------------------------


def test_heartbeat_replies_are_exact_and_depend_on_registration(peer, dealers):
    dealer = dealers()
    dealer.send(build_heartbeat())
    assert dealer.recv() == [b"", u32(3), u32(2), u32(1)]  # unknown: send your metadata
    dealer.send(build_container_metadata("m", "7", InputType.STRINGS))
    reg = peer.wait_for_registration(5)
    assert (reg.model_name, reg.model_version, reg.input_type) == ("m", "7", InputType.STRINGS)
    dealer.send(build_heartbeat())
    assert dealer.recv() == [b"", u32(3), u32(2), u32(0)]  # registered: keep-alive
    assert len(peer.events("heartbeat", reg.routing_id)) == 1
    peer.assert_no_violations()


def test_missing_rpc_version_frame_is_not_registered(peer, dealers):
    dealer = dealers()
    dealer.register(build_container_metadata("m", "1", InputType.DOUBLES)[:-1])
    assert wait_until(lambda: peer.violations, 5)
    assert peer.registered() == [] and peer.registrations == []
    assert "no RPC version frame" in peer.violations[0].message
    # still unknown, so its next heartbeat is again asked for metadata
    dealer.send(build_heartbeat())
    assert dealer.recv()[-1] == u32(HeartbeatType.REQUEST_CONTAINER_METADATA)


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ([b"", u32(0), b"m", b"1", b"3", u32(2)], "announces RPC version 2"),
        ([b"", u32(0), b"m", b"1", u32(3), u32(3)], "decimal number"),
        ([b"", u32(0), b"m", b"1", b"3", u32(3), b""], "has 7 frames, expected 6"),
        ([b"", u32(0), b"m", b"1"], "has 4 frames"),
        ([b"", u32(0), b"", b"1", b"3", u32(3)], "model name frame is empty"),
    ],
)
def test_malformed_metadata_is_recorded_and_not_registered(peer, dealers, metadata, match):
    dealer = dealers()
    dealer.register(metadata)
    assert wait_until(lambda: peer.violations, 5)
    assert match in peer.violations[0].message
    with pytest.raises(TimeoutError, match="violations: .*" + match.split()[0]):
        peer.wait_for_registration(0.2)


def test_metadata_from_a_registered_container_is_ignored(peer, dealers):
    dealer = dealers()
    dealer.register()
    reg = peer.wait_for_registration(5)
    dealer.send(build_container_metadata("other", "2", InputType.INTS))
    assert wait_until(lambda: peer.events("duplicate-metadata"), 5)
    assert peer.registrations == [reg]


def test_connection_and_replica_ids_count_like_clippers(peer, dealers):
    first, second, third = dealers(), dealers(), dealers()
    first.register(build_container_metadata("a", "1", InputType.DOUBLES))
    peer.wait_for_registration(5, count=1)
    second.register(build_container_metadata("a", "1", InputType.DOUBLES))
    peer.wait_for_registration(5, count=2)
    third.register(build_container_metadata("b", "1", InputType.DOUBLES))
    peer.wait_for_registration(5, count=3)
    regs = peer.registrations
    assert [r.connection_id for r in regs] == [0, 1, 2]
    assert [(r.model_name, r.replica_id) for r in regs] == [("a", 0), ("a", 1), ("b", 0)]
    assert len({r.routing_id for r in regs}) == 3


# --- requests ---------------------------------------------------------------------------------


def test_requests_have_the_frontends_exact_frames_and_a_global_msg_id(peer, dealers):
    one, two = dealers(), dealers()
    one.register()
    rid_one = peer.wait_for_registration(5, count=1).routing_id
    two.register()
    rid_two = peer.wait_for_registration(5, count=2).routing_id

    future = predict_async(peer, [doubles(1, 2), doubles(3, 4)], routing_id=rid_one)
    frames = one.recv()
    # verified layout: two doubles vectors of length 2
    assert [len(f) for f in frames] == [0, 4, 4, 4, 4, 8, 32, 16, 16]
    assert frames[:7] == [b"", u32(3), u32(1), u32(0), u32(0), u64(32), u64(3, 2, 16, 16)]
    assert frames[7:] == [doubles(1, 2), doubles(3, 4)]
    one.send(build_prediction_response(0, ["3.0", "7.0"]))
    assert future.result(5) == [b"3.0", b"7.0"]

    future = predict_async(peer, [doubles(5)], routing_id=rid_two)
    assert two.answer(sums).msg_id == 1  # one counter for all containers
    assert future.result(5) == [b"5.0"]
    future = predict_async(peer, [doubles(6)], routing_id=rid_one)
    assert one.answer(sums).msg_id == 2
    assert future.result(5) == [b"6.0"]
    peer.assert_no_violations()


def test_one_batch_in_flight_per_container(peer, dealers):
    dealer = dealers()
    dealer.register()
    peer.wait_for_registration(5)
    first = predict_async(peer, [doubles(1)])
    second = predict_async(peer, [doubles(2)])
    request = parse_frontend_message(dealer.recv())
    assert dealer.silent_for(0.3)  # the second batch waits for the first answer
    dealer.send(sums(request))
    dealer.answer(sums)
    assert sorted([first.result(5), second.result(5)]) == [[b"1.0"], [b"2.0"]]


def test_msg_id_wraps_at_u32(peer, dealers):
    dealer = dealers()
    dealer.register()
    peer.wait_for_registration(5)
    peer._next_msg_id = 2**32 - 1  # as after four billion messages
    for expected in (2**32 - 1, 0):
        future = predict_async(peer, [doubles(1)])
        assert dealer.answer(sums).msg_id == expected
        assert future.result(5) == [b"1.0"]


# --- answers that break the protocol ----------------------------------------------------------


def _extra_frame(request: PredictionRequest) -> list[bytes]:
    return sums(request) + [b"extra"]


def _missing_output(request: PredictionRequest) -> list[bytes]:
    return sums(request)[:-1]


def _input_type_word_in_header(request: PredictionRequest) -> list[bytes]:
    # the layout Clipper's older doc describes: [input_type, N, len...]
    outputs = [b"3.0", b"7.0"]
    header = u64(int(InputType.STRINGS), 2, 3, 3)
    return [b"", u32(1), u32(request.msg_id), u64(len(header)), header, *outputs]


def _u32_header_size(request: PredictionRequest) -> list[bytes]:
    frames = sums(request)
    frames[3] = u32(len(frames[4]))
    return frames


def _wrong_header_size(request: PredictionRequest) -> list[bytes]:
    frames = sums(request)
    frames[3] = u64(len(frames[4]) + 8)
    return frames


def _no_delimiter(request: PredictionRequest) -> list[bytes]:
    return sums(request)[1:]


def _other_msg_id(request: PredictionRequest) -> list[bytes]:
    return build_prediction_response(request.msg_id + 1, ["3.0", "7.0"])


def _one_output(request: PredictionRequest) -> list[bytes]:
    return build_prediction_response(request.msg_id, ["3.0"])


def _u64_msg_id(request: PredictionRequest) -> list[bytes]:
    frames = sums(request)
    frames[2] = u64(request.msg_id)
    return frames


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (_extra_frame, "with 2 outputs has 8 frames, expected 7"),
        (_missing_output, "with 2 outputs has 6 frames, expected 7"),
        (_input_type_word_in_header, "4 u64 values for 4 outputs"),
        (_u32_header_size, "output header size frame must be 8 bytes"),
        (_wrong_header_size, "output header size frame says 32 bytes"),
        (_no_delimiter, "frame 0 must be the empty delimiter"),
        (_other_msg_id, "answer echoes msg_id 1, expected 0"),
        (_one_output, "has 1 outputs for 2 inputs"),
        (_u64_msg_id, "msg_id frame must be 4 bytes"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_malformed_answers_fail_the_request_and_are_recorded(peer, dealers, make, match):
    dealer = dealers()
    dealer.register()
    reg = peer.wait_for_registration(5)
    future = predict_async(peer, [doubles(1, 2), doubles(3, 4)])
    dealer.answer(make)
    with pytest.raises(ProtocolViolation, match=match):
        future.result(5)
    assert [v.routing_id for v in peer.violations] == [reg.routing_id]
    assert match in peer.violations[0].message
    with pytest.raises(ProtocolViolation, match=match):
        peer.assert_no_violations()


def test_answer_without_a_request_in_flight_is_a_violation(peer, dealers):
    dealer = dealers()
    dealer.register()
    peer.wait_for_registration(5)
    dealer.send(build_prediction_response(0, ["1.0"]))
    assert wait_until(lambda: peer.violations, 5)
    assert "no request in flight" in peer.violations[0].message


def test_answers_from_unregistered_ids_are_discarded(peer, dealers):
    stranger = dealers()
    stranger.send(build_prediction_response(0, ["1.0"]))
    assert wait_until(lambda: peer.events("discarded"), 5)
    assert stranger.silent_for(0.2)  # and not answered
    assert peer.violations == []


# --- liveness and restarts --------------------------------------------------------------------


def test_silent_container_is_dropped_and_its_request_fails():
    with ClipperPeer(port=0, silence_timeout=0.3, check_interval=0.05) as peer:
        context = zmq.Context()
        try:
            talker, mute = HandDealer(context, peer.port), HandDealer(context, peer.port)
            talker.register()
            keeps = peer.wait_for_registration(5, count=1)
            mute.register()
            drops = peer.wait_for_registration(5, count=2)
            future = predict_async(peer, [doubles(1)], routing_id=drops.routing_id)
            mute.recv()  # the request, never answered
            deadline = time.monotonic() + 0.8
            while time.monotonic() < deadline:  # only `talker` keeps heartbeating
                talker.send(build_heartbeat())
                talker.recv()
                time.sleep(0.05)
            with pytest.raises(ContainerGone, match="silent"):
                future.result(1)
            assert [r.routing_id for r in peer.registered()] == [keeps.routing_id]
            assert [e.routing_id for e in peer.events("dropped")] == [drops.routing_id]
            # a dropped container that speaks again is a stranger: asked for metadata
            mute.send(build_heartbeat())
            assert mute.recv()[-1] == u32(HeartbeatType.REQUEST_CONTAINER_METADATA)
        finally:
            for dealer in (talker, mute):
                dealer.close()
            context.term()


def test_restart_rebinds_the_same_port_and_forgets_containers(peer, dealers):
    dealer = dealers()
    dealer.register()
    before = peer.wait_for_registration(5)
    pending = predict_async(peer, [doubles(1)])
    dealer.recv()  # the request arrived; no answer before the restart
    port = peer.port
    peer.restart()
    with pytest.raises(ContainerGone, match="restarted"):
        pending.result(5)
    assert peer.port == port and peer.registered() == []
    # the same DEALER reconnects by itself and, being unknown now, is asked for metadata
    dealer.send(build_heartbeat())
    assert dealer.recv()[-1] == u32(HeartbeatType.REQUEST_CONTAINER_METADATA)
    dealer.send(build_container_metadata("m", "1", InputType.DOUBLES))
    after = peer.wait_for_registration(5)
    assert after.routing_id != before.routing_id
    future = predict_async(peer, [doubles(2, 3)])
    assert dealer.answer(sums).msg_id == 0  # a new frontend process counts from 0
    assert future.result(5) == [b"5.0"]


def test_predict_waits_for_a_registration_and_times_out_clearly(peer):
    with pytest.raises(TimeoutError, match="no container registered"):
        peer.predict([doubles(1)], InputType.DOUBLES, timeout=0.2)


def test_free_port_and_close(dealers, peer):
    assert peer.port > 0 and peer.address == f"tcp://127.0.0.1:{peer.port}"
    other = ClipperPeer(port=0)
    assert other.port != peer.port
    other.close()
    other.close()  # idempotent
    with pytest.raises(ContainerGone, match="not running"):
        other.predict([doubles(1)], InputType.DOUBLES, routing_id=b"\x00abcd")
