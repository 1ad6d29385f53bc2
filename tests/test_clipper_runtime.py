"""The Clipper model-container runtime against a protocol-exact frontend peer, over real
loopback ZeroMQ: registration, every input type, heartbeats, re-registration, failures, the
``python -m bentolite.clipper`` entrypoint and a real saved bundle."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from clipper_peer import ClipperPeer, ContainerGone, wait_until

from bentolite.clipper.container import build_runtime
from bentolite.clipper.protocol import (
    InputType,
    build_heartbeat_reply,
    build_prediction_request,
)
from bentolite.clipper.runtime import ClipperRuntime
from bentolite.exceptions import ConfigError, InferenceError, InvalidArgument

pytestmark = pytest.mark.timeout(30)

# Short timings so that liveness behaviour shows within a second.
POLL = 0.1
SILENCE = 0.6


def doubles(*values: float) -> bytes:
    return np.array(values, dtype="<f8").tobytes()


def sum_doubles(frames: list[bytes]) -> list[str]:
    return [str(float(np.frombuffer(f, "<f8").sum())) for f in frames]


@pytest.fixture
def peer() -> Iterator[ClipperPeer]:
    with ClipperPeer(port=0) as peer:
        yield peer


@contextlib.contextmanager
def running(runtime: ClipperRuntime) -> Iterator[ClipperRuntime]:
    """Run ``runtime`` in a thread; stop it (from this thread) on exit."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            runtime.run()
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield runtime
    finally:
        runtime.stop()
        thread.join(5)
        assert not thread.is_alive(), "run() did not return after stop()"
    assert not errors, errors


def make_runtime(peer: ClipperPeer, handler=sum_doubles, **kwargs) -> ClipperRuntime:
    options = {
        "model_name": "sum-model",
        "model_version": "1",
        "input_type": "doubles",
        "port": peer.port,
        "ready_file": None,
        "poll_timeout": POLL,
        "silence_timeout": SILENCE,
    }
    options.update(kwargs)
    return ClipperRuntime(handler, **options)


# --- registration and answers -----------------------------------------------------------------


def test_registers_with_name_version_and_input_type(peer, tmp_path):
    ready = tmp_path / "ready.check"
    runtime = make_runtime(peer, model_name="my-model", model_version="v1-beta", ready_file=ready)
    with running(runtime):
        reg = peer.wait_for_registration(5)
        assert (reg.model_name, reg.model_version, reg.input_type) == (
            "my-model",
            "v1-beta",
            InputType.DOUBLES,
        )
        assert len(reg.routing_id) == 5  # the ROUTER's own id: the container sets none
        assert ready.read_text().strip() == "READY"
        assert peer.predict([doubles(1, 2)], InputType.DOUBLES) == [b"3.0"]
    assert not ready.exists(), "the ready file outlives the runtime"
    assert runtime.sessions == 1
    peer.assert_no_violations()


def test_container_started_before_the_frontend_registers_when_it_appears(tmp_path):
    with ClipperPeer(port=0) as probe:
        port = probe.port  # a free port, released again below
    peer = None
    runtime = ClipperRuntime(
        sum_doubles,
        model_name="m",
        model_version="1",
        input_type=InputType.DOUBLES,
        port=port,
        ready_file=None,
        poll_timeout=POLL,
        silence_timeout=5.0,
    )
    with running(runtime):
        time.sleep(0.3)
        peer = ClipperPeer(port=port)
        try:
            peer.wait_for_registration(5)
            assert peer.predict([doubles(2, 2)], InputType.DOUBLES) == [b"4.0"]
        finally:
            peer.close()
    assert runtime.sessions == 1  # the queued first heartbeat reached the late frontend


def _decode(kind: InputType, frame: bytes) -> object:
    if kind is InputType.BYTES:
        return bytes(frame).hex()
    if kind is InputType.STRINGS:
        return bytes(frame).decode("utf-8")
    return np.frombuffer(frame, kind.dtype).tolist()


UNEVEN_INPUTS = {
    InputType.BYTES: [b"\x00\x01\x02", b"", b"\xff" * 1000, b"z"],
    InputType.INTS: [np.array(v, "<i4").tobytes() for v in ([1, -2, 3], [], [7] * 50, [2**31 - 1])],
    InputType.FLOATS: [np.array(v, "<f4").tobytes() for v in ([0.5], [1.5, 2.5, 3.5, 4.5], [], [9.0])],
    InputType.DOUBLES: [doubles(*v) for v in ([1.25], [], [0.1] * 300, [1e300, -1e-300])],
    InputType.STRINGS: ["héllo wörld".encode(), b"", b"x" * 5000, "日本".encode()],
}


@pytest.mark.parametrize("kind", list(InputType), ids=lambda k: k.label)
def test_every_input_type_with_uneven_sizes(peer, kind):
    def describe(frames: list[bytes]) -> list[str]:
        return [json.dumps(_decode(kind, f)) for f in frames]

    inputs = UNEVEN_INPUTS[kind]
    with running(make_runtime(peer, describe, input_type=kind.label)):
        assert peer.wait_for_registration(5).input_type is kind
        outputs = peer.predict(inputs, kind)
    assert [json.loads(o) for o in outputs] == [_decode(kind, f) for f in inputs]
    peer.assert_no_violations()


@pytest.mark.parametrize("size", [1, 256])
def test_batches_are_answered_in_input_order(peer, size):
    calls: list[int] = []

    def handler(frames: list[bytes]) -> list[str]:
        calls.append(len(frames))
        return sum_doubles(frames)

    inputs = [doubles(i, 0.5) for i in range(size)]
    with running(make_runtime(peer, handler)):
        first = peer.predict(inputs, InputType.DOUBLES)
        second = peer.predict(inputs[::-1], InputType.DOUBLES)
    expected = [f"{i + 0.5}".encode() for i in range(size)]
    assert first == expected
    assert second == expected[::-1]
    assert calls == [size, size]  # one handler call per batch, never split or merged


# --- liveness ---------------------------------------------------------------------------------


def test_idle_container_exchanges_keep_alive_heartbeats(peer):
    runtime = make_runtime(peer)
    with running(runtime):
        reg = peer.wait_for_registration(5)
        time.sleep(SILENCE * 2)  # idle for twice the silence timeout
        beats = peer.events("heartbeat", reg.routing_id)
        assert peer.predict([doubles(1)], InputType.DOUBLES) == [b"1.0"]
    assert len(beats) >= 5  # one per POLL of quiet, each answered with keep-alive
    gaps = [b.at - a.at for a, b in zip(beats, beats[1:])]
    assert max(gaps) < SILENCE
    # the keep-alive replies count as signs of life: no new session was needed
    assert runtime.sessions == 1
    assert [r.routing_id for r in peer.registrations] == [reg.routing_id]


def test_silent_frontend_makes_a_new_session_that_registers_again(peer):
    runtime = make_runtime(peer)
    with running(runtime):
        first = peer.wait_for_registration(5)
        peer.mute()  # hears nothing, answers nothing, like a hung frontend
        assert wait_until(lambda: runtime.sessions >= 2, SILENCE * 4)
        peer.mute(False)
        second = peer.wait_for_registration(5, count=2)
        assert second.routing_id != first.routing_id  # a fresh socket, so a fresh routing id
        assert peer.predict([doubles(5, 5)], InputType.DOUBLES, routing_id=second.routing_id) == [b"10.0"]
    peer.assert_no_violations()


def test_frontend_restart_is_followed_by_re_registration_on_the_same_socket(peer):
    runtime = make_runtime(peer)
    with running(runtime):
        first = peer.wait_for_registration(5)
        assert peer.predict([doubles(1, 1)], InputType.DOUBLES) == [b"2.0"]
        port = peer.port
        peer.restart(down_for=0.2)
        assert peer.port == port
        assert peer.registered() == []
        second = peer.wait_for_registration(5)
        assert second.routing_id != first.routing_id
        assert peer.events("metadata-request", second.routing_id)  # asked via heartbeat type 1
        assert peer.predict([doubles(3, 4), doubles(-1)], InputType.DOUBLES) == [b"7.0", b"-1.0"]
    assert runtime.sessions == 1  # re-registered without waiting for the silence timeout
    peer.assert_no_violations()


def test_answer_computed_across_a_frontend_restart_is_not_delivered(peer):
    # After a restart the frontend counts msg_ids from 0 again, so a late answer to the old
    # request 0 would pass for the answer to the new request 0.
    entered = threading.Event()

    def slow_then_fast(frames: list[bytes]) -> list[str]:
        if np.frombuffer(frames[0], "<f8")[0] == 1.0:
            entered.set()
            time.sleep(0.8)
        return sum_doubles(frames)

    runtime = make_runtime(peer, slow_then_fast, silence_timeout=5.0)
    with running(runtime):
        peer.wait_for_registration(5)

        def ask_old() -> None:
            with contextlib.suppress(ContainerGone):
                peer.predict([doubles(1)], InputType.DOUBLES)

        threading.Thread(target=ask_old, daemon=True).start()
        assert entered.wait(5)
        peer.restart()
        peer.wait_for_registration(5)
        assert peer.predict([doubles(2)], InputType.DOUBLES) == [b"2.0"]
        assert peer.events("request")[-1].at < peer.events("response")[-1].at
    peer.assert_no_violations()
    assert runtime.sessions == 1


def test_slow_prediction_keeps_heartbeating_and_is_not_dropped():
    # The peer drops containers silent for more than 0.4 s; the prediction takes 1.2 s.
    with ClipperPeer(port=0, silence_timeout=0.4, check_interval=0.05) as peer:

        def slow(frames: list[bytes]) -> list[str]:
            time.sleep(1.2)
            return sum_doubles(frames)

        runtime = make_runtime(peer, slow)
        with running(runtime):
            reg = peer.wait_for_registration(5)
            started = time.monotonic()
            assert peer.predict([doubles(2), doubles(3)], InputType.DOUBLES) == [b"2.0", b"3.0"]
            finished = time.monotonic()
        during = [e for e in peer.events("heartbeat", reg.routing_id) if started <= e.at <= finished]
        assert len(during) >= 5
        assert peer.events("dropped") == []
        assert runtime.sessions == 1


def test_stop_returns_promptly_during_a_long_prediction(peer):
    entered = threading.Event()

    def stuck(frames: list[bytes]) -> list[str]:
        entered.set()
        time.sleep(3)
        return sum_doubles(frames)

    runtime = make_runtime(peer, stuck)
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    peer.wait_for_registration(5)

    def ask() -> None:
        with contextlib.suppress(ContainerGone):  # the peer closes before an answer comes
            peer.predict([doubles(1)], InputType.DOUBLES)

    threading.Thread(target=ask, daemon=True).start()
    assert entered.wait(5)
    started = time.monotonic()
    runtime.stop()
    thread.join(2)
    assert not thread.is_alive()
    assert time.monotonic() - started < 1.0


# --- failures ---------------------------------------------------------------------------------


def test_failed_batch_is_predicted_input_by_input_and_keeps_serving(peer, caplog):
    calls: list[int] = []

    def picky(frames: list) -> list[str]:
        calls.append(len(frames))
        values = [np.frombuffer(f, "<f8") for f in frames]
        if any(len(v) == 0 for v in values):
            raise ValueError("empty input")
        return [str(float(v.sum())) for v in values]

    with caplog.at_level(logging.WARNING, logger="bentolite.clipper.runtime"):
        with running(make_runtime(peer, picky)):
            outputs = peer.predict([doubles(1), doubles(), doubles(2)], InputType.DOUBLES)
            after = peer.predict([doubles(1, 2), doubles(3)], InputType.DOUBLES)
    assert outputs[0] == b"1.0" and outputs[2] == b"2.0"
    assert json.loads(outputs[1]) == {"error": "empty input", "type": "ValueError"}
    assert after == [b"3.0", b"3.0"]
    assert calls == [3, 1, 1, 1, 2]  # the failed batch once, then each input; then one call
    batch = [r for r in caplog.records if "on 3 inputs failed; predicting them one by one" in r.message]
    assert len(batch) == 1 and batch[0].exc_info[0] is ValueError
    alone = [r for r in caplog.records if "input 1 failed on its own" in r.message]
    assert len(alone) == 1 and alone[0].exc_info[0] is ValueError
    assert any("1 of 3 inputs failed on their own (input 1)" in r.message for r in caplog.records)
    peer.assert_no_violations()


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (lambda frames: ["x"] * (len(frames) + 1), "returned 2 output(s) for 1 input(s)"),
        (lambda frames: "a string", "returned str; expected a list of 1 strings"),
        (lambda frames: [1.0] * len(frames), "output 0 of the prediction handler is float"),
        (lambda frames: ["\ud800"] * len(frames), "output 0 of the prediction handler is not valid UTF-8"),
    ],
)
def test_handler_results_of_the_wrong_shape_become_error_outputs(peer, handler, message):
    with running(make_runtime(peer, handler)):
        outputs = peer.predict([doubles(1), doubles(2)], InputType.DOUBLES)
        assert peer.predict([doubles(1)], InputType.DOUBLES)  # still serving
    errors = [json.loads(o) for o in outputs]
    assert len(errors) == 2
    assert errors[0] == errors[1]
    assert errors[0]["type"] == "InferenceError"
    assert message in errors[0]["error"]


def test_system_exit_in_the_handler_stops_the_runtime_with_an_error(peer):
    def leave(frames: list[bytes]) -> list[str]:
        raise SystemExit(3)

    runtime = make_runtime(peer, leave)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            runtime.run()
        except InferenceError as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    peer.wait_for_registration(5)
    with pytest.raises(TimeoutError):  # never answered: the runtime stopped instead
        peer.predict([doubles(1)], InputType.DOUBLES, timeout=0.5)
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1 and "raised SystemExit" in str(errors[0])


def test_request_of_another_input_type_gets_error_outputs(peer):
    with running(make_runtime(peer)):
        outputs = peer.predict([b"\x01\x00\x00\x00"] * 2, InputType.INTS)
        assert peer.predict([doubles(4)], InputType.DOUBLES) == [b"4.0"]
    error = json.loads(outputs[0])
    assert error["type"] == "BadInput"
    assert "ints" in error["error"] and "doubles" in error["error"]
    assert len(outputs) == 2


def test_malformed_frontend_messages_are_logged_and_skipped(peer, caplog):
    good = build_prediction_request(9000, InputType.DOUBLES, [doubles(1), doubles(2)])
    malformed = [
        [b"", b"\x02\x00\x00\x00", *good[2:]],  # RPC version 2
        good[:-1],  # a content frame missing
        good[:5] + [b"\x10\x00\x00\x00", *good[6:]],  # u32 where the u64 header size belongs
        [b"garbage"],
        [b"", b"\x03\x00\x00\x00"],
        build_heartbeat_reply(1)[:-1],  # heartbeat reply without its type
        good[:4] + [b"\x01\x00\x00\x00", *good[5:]],  # a feedback request
    ]
    runtime = make_runtime(peer, silence_timeout=5.0)
    with caplog.at_level(logging.WARNING, logger="bentolite.clipper.runtime"):
        with running(runtime):
            reg = peer.wait_for_registration(5)
            for frames in malformed:
                peer.send_raw(frames)
            assert wait_until(
                lambda: sum("malformed" in r.message for r in caplog.records) == len(malformed), 5
            )
            assert peer.predict([doubles(1, 2, 3)], InputType.DOUBLES) == [b"6.0"]
    skipped = [r.message for r in caplog.records if "malformed" in r.message]
    assert any("RPC version frame is 2" in m for m in skipped)
    assert any("FEEDBACK" in m for m in skipped)
    assert runtime.sessions == 1
    assert peer.events("response", reg.routing_id) and not peer.events("discarded")
    peer.assert_no_violations()  # nothing was answered to the malformed requests


# --- construction, metrics --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model_name": ""}, "model_name must be a non-empty string"),
        ({"model_version": 1}, "model_version must be a non-empty string"),
        ({"port": 0}, "port must be in 1..65535"),
        ({"poll_timeout": 5.0, "silence_timeout": 5.0}, "poll_timeout < silence_timeout"),
        ({"input_type": "tensor"}, "unknown Clipper input type 'tensor'"),
    ],
)
def test_constructor_checks_its_arguments(kwargs, match):
    options = {"model_name": "m", "model_version": "1", "input_type": "d"}
    options.update(kwargs)
    with pytest.raises(InvalidArgument, match=match):
        ClipperRuntime(sum_doubles, **options)


def test_unwritable_ready_file_is_a_config_error(peer, tmp_path):
    runtime = make_runtime(peer, ready_file=tmp_path / "missing-dir" / "ready")
    with pytest.raises(ConfigError, match="cannot create the ready file"):
        runtime.run()


def test_metrics_use_clippers_names(peer):
    runtime = make_runtime(peer, metrics_port=0, metrics_addr="127.0.0.1")
    with running(runtime):
        peer.wait_for_registration(5)
        for _ in range(3):
            peer.predict([doubles(1), doubles(2)], InputType.DOUBLES)
        url = f"http://127.0.0.1:{runtime.metrics_server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    assert "clipper_mc_pred_total 3.0" in text  # one per answered batch, as Clipper counts
    assert 'clipper_mc_handle_time_ms_bucket{le="5.0"}' in text
    assert 'clipper_mc_handle_time_ms_bucket{le="500.0"}' in text
    assert 'clipper_mc_end_to_end_latency_ms_bucket{le="250.0"}' in text
    assert 'clipper_mc_recv_time_ms_bucket{le="0.1"}' in text
    assert 'clipper_mc_parse_time_ms_bucket{le="1.0"}' in text
    assert "clipper_mc_parse_time_ms_count 3.0" in text
    assert "python_gc" not in text  # its own registry, not the process-wide one


def test_importing_the_clipper_package_does_not_import_zmq():
    code = (
        "import sys, bentolite, bentolite.clipper, bentolite.clipper.container\n"
        "from bentolite.clipper import ClipperRuntime\n"
        "assert ClipperRuntime.__name__ == 'ClipperRuntime'\n"
        "assert 'zmq' not in sys.modules, 'zmq imported'\n"
        "assert 'ClipperRuntime' in dir(bentolite.clipper)\n"
        "try:\n    bentolite.clipper.nothing\nexcept AttributeError:\n    pass\n"
        "else:\n    raise SystemExit('no AttributeError')\n"
        "from bentolite.clipper import deploy_to_clipper\n"
        "import bentolite.clipper.deploy as deploy\n"
        "assert deploy_to_clipper is deploy.deploy_to_clipper\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr


# --- a real bundle, in process and through `python -m bentolite.clipper` ----------------------

SERVICE_MODULE = textwrap.dedent(
    """
    import bentolite
    from bentolite.adapters import ClipperDoublesInput, ClipperStringsInput, JsonInput


    class ClipperSum(bentolite.Service):
        @bentolite.api(input=ClipperDoublesInput())
        def total(self, inputs):
            if any(len(x) == 0 for x in inputs):
                raise ValueError("empty input")
            return [float(x.sum()) for x in inputs]

        @bentolite.api(input=JsonInput())
        def describe(self, payload):
            return payload


    class TwoClipperApis(ClipperSum):
        @bentolite.api(input=ClipperStringsInput())
        def shout(self, names):
            return [n.upper() + "!" for n in names]
    """
)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """Two saved bundles: one with a single Clipper API, one with two."""
    src = tmp_path_factory.mktemp("service_src")
    (src / "clipper_sum_service.py").write_text(SERVICE_MODULE)
    sys.path.insert(0, str(src))
    try:
        import clipper_sum_service as module
    finally:
        sys.path.remove(str(src))
    out = tmp_path_factory.mktemp("bundles")
    return {
        "sum": Path(module.ClipperSum().save_to_dir(out / "sum")),
        "two": Path(module.TwoClipperApis().save_to_dir(out / "two")),
    }


def clipper_env(peer: ClipperPeer, **extra: str) -> dict[str, str]:
    env = {
        "CLIPPER_MODEL_NAME": "sum-model",
        "CLIPPER_MODEL_VERSION": "1",
        "CLIPPER_IP": "127.0.0.1",
        "CLIPPER_PORT": str(peer.port),
        "BENTOLITE_READY_FILE": "",
    }
    env.update(extra)
    return env


def test_saved_bundle_answers_through_its_adapter(peer, bundles):
    runtime = build_runtime(str(bundles["sum"]), None, clipper_env(peer))
    runtime.poll_timeout = POLL
    with running(runtime):
        reg = peer.wait_for_registration(5)
        assert (reg.model_name, reg.input_type) == ("sum-model", InputType.DOUBLES)
        outputs = peer.predict([doubles(1, 2), doubles(0.5), doubles(-3, 3, 1)], InputType.DOUBLES)
        assert outputs == [b"3.0", b"0.5", b"1.0"]  # floats as JSON text
        failed = peer.predict([doubles(1), doubles()], InputType.DOUBLES)
        assert failed[0] == b"1.0"  # the valid input of a failed batch keeps its prediction
        assert json.loads(failed[1]) == {"error": "empty input", "type": "ValueError"}
        assert peer.predict([doubles(7)], InputType.DOUBLES) == [b"7.0"]


def test_handler_runs_async_api_functions():
    import bentolite
    from bentolite.adapters import ClipperDoublesInput
    from bentolite.clipper.container import handler_for

    class AsyncSum(bentolite.Service):
        @bentolite.api(input=ClipperDoublesInput())
        async def total(self, inputs):
            return [float(x.sum()) for x in inputs]

    svc = AsyncSum()
    handle = handler_for(svc, svc.apis["total"])
    assert handle([doubles(1, 2), doubles(4)]) == ["3.0", "4.0"]


def test_bundle_api_is_chosen_by_flag_or_env(peer, bundles):
    runtime = build_runtime(str(bundles["two"]), "shout", clipper_env(peer))
    assert runtime.input_type is InputType.STRINGS
    runtime = build_runtime(str(bundles["two"]), None, clipper_env(peer, BENTOLITE_API="total"))
    assert runtime.input_type is InputType.DOUBLES
    with running(runtime):
        assert peer.predict([doubles(2, 2)], InputType.DOUBLES) == [b"4.0"]


def entrypoint_env(peer: ClipperPeer, **changes: str | None) -> dict[str, str]:
    """This process's environment plus the variables for ``peer``; None removes a variable."""
    env = {**os.environ, **clipper_env(peer)}
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_entrypoint(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "bentolite.clipper", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=20)


def start_entrypoint(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "bentolite.clipper", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_entrypoint_serves_and_exits_cleanly_on_sigterm(peer, bundles, tmp_path):
    ready = tmp_path / "model_is_ready.check"
    env = entrypoint_env(
        peer,
        BENTOLITE_READY_FILE=str(ready),
        CLIPPER_INPUT_TYPE="D",  # an alias Clipper's containers accept
        CLIPPER_MODEL_PATH=str(bundles["sum"]),  # where the bundle is found by default
    )
    process = start_entrypoint([], env)
    try:
        peer.wait_for_registration(15)
        assert ready.exists()
        assert peer.predict([doubles(1, 1, 1)], InputType.DOUBLES) == [b"3.0"]
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "received SIGTERM; stopping" in stderr
    assert "Traceback" not in stderr
    assert not ready.exists()


def test_entrypoint_exits_cleanly_on_sigint(peer, bundles):
    process = start_entrypoint([str(bundles["sum"])], entrypoint_env(peer))
    try:
        peer.wait_for_registration(15)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "KeyboardInterrupt" not in stderr


@pytest.mark.parametrize(
    ("change", "args", "message"),
    [
        (
            {"CLIPPER_MODEL_VERSION": None},
            [],
            "CLIPPER_MODEL_VERSION is not set; set it to the model version registered with Clipper",
        ),
        ({"CLIPPER_MODEL_NAME": ""}, [], "CLIPPER_MODEL_NAME is empty"),
        (
            {"CLIPPER_INPUT_TYPE": "ints"},
            [],
            "CLIPPER_INPUT_TYPE names ints, but API 'total' takes doubles (ClipperDoublesInput); "
            "set CLIPPER_INPUT_TYPE=doubles",
        ),
        ({"CLIPPER_INPUT_TYPE": "I"}, [], "CLIPPER_INPUT_TYPE names ints, but API 'total' takes doubles"),
        ({"CLIPPER_INPUT_TYPE": "tensor"}, [], "CLIPPER_INPUT_TYPE: unknown Clipper input type 'tensor'"),
        ({"CLIPPER_PORT": "70000"}, [], "CLIPPER_PORT='70000' is not a port number"),
        ({"BENTOLITE_METRICS_PORT": "x"}, [], "BENTOLITE_METRICS_PORT='x' is not a port number"),
        ({}, ["--api", "describe"], "--api: API 'describe' takes JsonInput, which Clipper cannot call"),
        ({"BENTOLITE_API": "nope"}, [], "BENTOLITE_API: ClipperSum has no API 'nope'"),
    ],
)
def test_entrypoint_configuration_errors_exit_2_with_one_line(peer, bundles, change, args, message):
    done = run_entrypoint([str(bundles["sum"]), *args], entrypoint_env(peer, **change))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("bentolite.clipper: error: ")
    assert message in lines[0]
    assert peer.registrations == []


def test_entrypoint_asks_to_choose_between_two_clipper_apis(peer, bundles):
    done = run_entrypoint([str(bundles["two"])], entrypoint_env(peer))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "bentolite.clipper: error: TwoClipperApis has 2 Clipper APIs (total, shout); "
        "choose one with --api or BENTOLITE_API"
    )


def test_entrypoint_reports_a_missing_bundle_in_one_line(peer, tmp_path):
    done = run_entrypoint([str(tmp_path / "nowhere")], entrypoint_env(peer))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not a bundle directory" in lines[0], done.stderr


def test_cli_clipper_container_is_the_same_entrypoint(tmp_path):
    """`bentolite clipper-container` checks the environment like `python -m bentolite.clipper`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPPER_")}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from bentolite.cli import main; main()",
            "clipper-container",
            str(tmp_path),
            "--api",
            "x",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "CLIPPER_MODEL_NAME" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_busy_metrics_port_is_a_warning_and_the_container_serves(peer, caplog):
    # two replicas on one host network: the second finds Clipper's metrics port taken
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        runtime = make_runtime(peer, metrics_port=port, metrics_addr="127.0.0.1")
        with caplog.at_level(logging.WARNING, logger="bentolite.clipper.runtime"):
            with running(runtime):
                assert peer.predict([doubles(1, 2)], InputType.DOUBLES) == [b"3.0"]
                assert runtime.metrics_server_port is None
    finally:
        taken.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"cannot serve metrics on 127.0.0.1:{port}: ")
    assert warnings[0].endswith("; serving without metrics")


def test_handler_gets_the_frames_as_received_not_copies(peer):
    seen: list[tuple[type, bytes, int]] = []

    def look(frames: list) -> list[str]:
        seen.extend((type(f), bytes(memoryview(f)), len(f)) for f in frames)
        return ["ok"] * len(frames)

    with running(make_runtime(peer, look)):
        assert peer.predict([doubles(1.5), doubles(2, 3)], InputType.DOUBLES) == [b"ok", b"ok"]
    assert [(data, size) for _, data, size in seen] == [(doubles(1.5), 8), (doubles(2, 3), 16)]
    assert not any(issubclass(kind, bytes) for kind, _, _ in seen)  # zero-copy frames, not bytes


def test_socket_flags_are_libzmqs():
    import zmq

    from bentolite.clipper import sockets

    assert (sockets._NOBLOCK, sockets._SNDMORE, sockets._RCVMORE) == (zmq.NOBLOCK, zmq.SNDMORE, zmq.RCVMORE)
