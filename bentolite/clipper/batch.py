"""One Clipper prediction batch through the user's handler: the outputs as UTF-8 payloads.

:class:`BatchPredictor` calls the handler once per batch. Should that call fail, it calls it
again input by input, so one bad input (3 numbers sent to a 4-feature model) costs only its own
prediction: every valid input of the batch, other clients' queries included, still gets its
prediction, and only the inputs that fail on their own get the JSON text
``{"error": "<message>", "type": "<exception class>"}``. A batch that succeeds costs nothing
extra: the handler is called exactly once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Union

from bentolite.clipper.protocol import InputType, PredictionRequest
from bentolite.exceptions import BadInput, InferenceError

if TYPE_CHECKING:
    from bentolite.clipper.metrics import ContainerMetrics

# Logged under the runtime's name: these lines belong to the container's log.
logger = logging.getLogger("bentolite.clipper.runtime")

#: What a runtime serves: the input frames of one batch -> one output string per input.
#: The frames come as an :class:`~bentolite.clipper.protocol.InputFrames` list. Each is a
#: bytes-like object: a ``memoryview`` of the one buffer the batch's small inputs were received
#: into (of its zero-copy frame, for a batch of one small input), a pyzmq ``Frame`` for large
#: inputs, ``bytes`` where a test builds the batch itself. It
#: has a ``len`` and the buffer protocol, so ``bytes(frame)`` copies it and ``memoryview(frame)``,
#: ``numpy.frombuffer(frame, ...)`` and ``str(frame, "utf-8")`` read it in place. It stays valid
#: for as long as a reference to it is kept, and no other batch shares its bytes.
Handler = Callable[[list[Any]], Sequence[Union[str, bytes]]]


class BatchPredictor:
    """Runs ``handler`` on the batches of a container serving ``input_type`` inputs."""

    def __init__(self, handler: Handler, input_type: InputType) -> None:
        self.handler = handler
        self.input_type = input_type

    def predict(self, request: PredictionRequest, metrics: ContainerMetrics | None = None) -> list[bytes]:
        """Exactly one UTF-8 payload per input of ``request``, in input order.

        Every ``Exception`` of the handler becomes error outputs; a ``BaseException`` that is
        not one (``SystemExit``) propagates.
        """
        # The frames as received: wrapping each in a memoryview costs more than all the
        # decoding of a batch of small inputs.
        inputs = request.inputs
        n = len(inputs)
        if request.input_type is not self.input_type:
            error = BadInput(
                f"the frontend sent {request.input_type.label} inputs; this container takes "
                f"{self.input_type.label}"
            )
            logger.error("request %d: %s", request.msg_id, error)
            return [error_output(error)] * n
        if n == 0:
            return []
        started = time.perf_counter()
        try:
            return encode_outputs(self.handler(inputs), n)
        except Exception as exc:  # the user's code failing must not take the replica down
            if n == 1:
                logger.exception("request %d: prediction on 1 input failed", request.msg_id)
                return [error_output(exc)]
            logger.exception(
                "request %d: prediction on %d inputs failed; predicting them one by one",
                request.msg_id,
                n,
            )
        finally:
            if metrics is not None:
                metrics.handle_time.observe((time.perf_counter() - started) * 1000)
        # outside the except block, so the errors of single inputs are not chained to the batch's
        return self._one_by_one(request.msg_id, inputs)

    def _one_by_one(self, msg_id: int, inputs: list[Any]) -> list[bytes]:
        payloads: list[bytes] = []
        failed: list[int] = []
        for i, frame in enumerate(inputs):
            try:
                payloads.extend(encode_outputs(self.handler([frame]), 1))
            except Exception as exc:
                if not failed:
                    logger.error("request %d: input %d failed on its own", msg_id, i, exc_info=True)
                failed.append(i)
                payloads.append(error_output(exc))
        n = len(payloads)
        if failed:
            shown = ", ".join(map(str, failed[:10])) + (", ..." if len(failed) > 10 else "")
            logger.error(
                "request %d: %d of %d inputs failed on their own (input %s); the others were answered",
                msg_id,
                len(failed),
                n,
                shown,
            )
        else:
            logger.warning(
                "request %d: every input succeeded on its own although the batch of %d failed",
                msg_id,
                n,
            )
        return payloads


def encode_outputs(outputs: Any, n: int) -> list[bytes]:
    """The handler's outputs as UTF-8 payloads, or InferenceError naming what is wrong."""
    if not isinstance(outputs, (list, tuple)):
        raise InferenceError(
            f"the prediction handler returned {type(outputs).__name__}; expected a list of {n} strings"
        )
    if len(outputs) != n:
        raise InferenceError(f"the prediction handler returned {len(outputs)} output(s) for {n} input(s)")
    try:
        return [o.encode() for o in outputs]  # the common case: every output a str
    except (AttributeError, UnicodeEncodeError):
        pass
    payloads = []
    for i, output in enumerate(outputs):
        if isinstance(output, str):
            try:
                payloads.append(output.encode())
            except UnicodeEncodeError as exc:
                raise InferenceError(
                    f"output {i} of the prediction handler is not valid UTF-8 text: {exc}"
                ) from None
        elif isinstance(output, (bytes, bytearray, memoryview)):
            payloads.append(bytes(output))
        else:
            raise InferenceError(
                f"output {i} of the prediction handler is {type(output).__name__}; expected str or bytes"
            )
    return payloads


def error_output(exc: BaseException) -> bytes:
    return json.dumps({"error": str(exc), "type": type(exc).__name__}).encode()
