"""A Clipper batch with bad inputs, through the real runtime and real loopback ZeroMQ against the
protocol-exact frontend peer: every valid input gets its own prediction, only the bad ones get
an error, and a batch without a bad input calls the function once."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from clipper_peer import ClipperPeer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import bentolite
from bentolite.adapters import ClipperDoublesInput
from bentolite.clipper.batch import encode_outputs
from bentolite.clipper.container import handler_for
from bentolite.clipper.protocol import InputType
from bentolite.clipper.runtime import ClipperRuntime
from bentolite.exceptions import InferenceError

pytestmark = pytest.mark.timeout(60)

WEIGHTS = np.array([1.0, 2.0, 3.0, 4.0])


class FourFeatures(bentolite.Service):
    """A 4-feature linear model: any input of another length makes the batch call raise."""

    calls: list[int] = []

    @bentolite.api(input=ClipperDoublesInput())
    def score(self, xs):
        type(self).calls.append(len(xs))
        return (np.stack(xs) @ WEIGHTS).tolist()


@pytest.fixture(scope="module")
def served() -> Iterator[ClipperPeer]:
    svc = FourFeatures()
    with ClipperPeer(port=0) as peer:
        runtime = ClipperRuntime(
            handler_for(svc, svc.apis["score"]),
            model_name="four-features",
            model_version="1",
            input_type="doubles",
            port=peer.port,
            ready_file=None,
        )
        thread = threading.Thread(target=runtime.run, daemon=True)
        thread.start()
        try:
            peer.wait_for_registration(10)
            yield peer
        finally:
            runtime.stop()
            thread.join(5)
        assert not thread.is_alive()
        peer.assert_no_violations()


finite = st.floats(-1e6, 1e6, allow_nan=False)
good = st.lists(finite, min_size=4, max_size=4)
bad = st.lists(finite, min_size=0, max_size=7).filter(lambda v: len(v) != 4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.one_of(good, bad), min_size=1, max_size=24))
def test_each_input_of_a_batch_gets_its_own_answer(served, batch):
    FourFeatures.calls.clear()
    with _quiet():
        outputs = served.predict([np.array(v, "<f8").tobytes() for v in batch], InputType.DOUBLES)
    assert len(outputs) == len(batch)
    for values, output in zip(batch, outputs):
        answer = json.loads(output)
        if len(values) == 4:
            assert answer == pytest.approx(float(np.array(values) @ WEIGHTS))
        else:
            assert answer["type"] == "ValueError", answer
    if all(len(v) == 4 for v in batch):
        assert FourFeatures.calls == [len(batch)]  # no bad input: one call, nothing more
    elif len(batch) > 1:
        assert FourFeatures.calls == [len(batch)] + [1] * len(batch)


def test_bad_input_is_logged_once_with_its_position(served, caplog):
    inputs = [np.array(v, "<f8").tobytes() for v in ([1, 1, 1, 1], [1, 2, 3], [0, 0, 0, 1])]
    with caplog.at_level(logging.INFO, logger="bentolite.clipper.runtime"):
        outputs = served.predict(inputs, InputType.DOUBLES)
    assert json.loads(outputs[0]) == 10.0 and json.loads(outputs[2]) == 4.0
    assert json.loads(outputs[1])["type"] == "ValueError"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("on 3 inputs failed; predicting them one by one" in m for m in messages) == 1
    assert "request" in messages[-1] and "1 of 3 inputs failed on their own (input 1)" in messages[-1]


class Shouting(str):
    """A str subclass with an encode of its own, which its outputs are encoded with."""

    def encode(self, *args, **kwargs):  # type: ignore[override]
        return str(self).upper().encode()


def reference_payloads(outputs, n):
    """What encode_outputs answers, written plainly: each output encoded by its own encode."""
    if not isinstance(outputs, (list, tuple)):
        return InferenceError
    if len(outputs) != n:
        return InferenceError
    payloads = []
    for i, output in enumerate(outputs):
        if isinstance(output, str):
            try:
                payloads.append(output.encode())
            except UnicodeEncodeError as exc:
                return f"output {i} of the prediction handler is not valid UTF-8 text: {exc}"
        elif isinstance(output, (bytes, bytearray, memoryview)):
            payloads.append(bytes(output))
        else:
            return f"output {i} of the prediction handler is {type(output).__name__}; expected str or bytes"
    return payloads


text = st.text(st.sampled_from("a\u00e9\ud800\U0001f600"), max_size=4)  # a lone surrogate among them
output = st.one_of(
    text, text.map(Shouting), st.binary(max_size=4), st.binary(max_size=4).map(bytearray), st.integers()
)


@settings(max_examples=300)
@given(
    outputs=st.one_of(st.lists(output, max_size=5), st.lists(text, max_size=5), st.lists(text).map(tuple)),
    extra=st.sampled_from([0, 0, 0, 1, -1]),
)
@example(outputs=["1.5", Shouting("ok")], extra=0)
@example(outputs=["1.5", "\ud800"], extra=0)
def test_encode_outputs_encodes_each_output_as_its_own_encode_does(outputs, extra):
    n = len(outputs) + extra
    expected = reference_payloads(outputs, n)
    try:
        got = encode_outputs(outputs, n)
    except InferenceError as exc:
        assert expected is InferenceError or expected == str(exc)
    else:
        assert got == expected
        assert all(type(p) is bytes for p in got)


def test_clipper_adapter_outputs_of_str_are_the_strs_and_others_are_json():
    adapter = ClipperDoublesInput()
    assert adapter.to_clipper(["1.5", "x"], 2) == ["1.5", "x"]
    assert adapter.to_clipper(["1.5", 2], 2) == ["1.5", "2"]
    assert adapter.to_clipper(("a", "b"), 2) == ["a", "b"]
    with pytest.raises(InferenceError, match="returned 2 result"):
        adapter.to_clipper(["a", "b"], 3)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The expected tracebacks of failed batches, kept out of the test output."""
    log = logging.getLogger("bentolite.clipper.runtime")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)
