"""How much the Clipper runtime adds to a prediction batch, over real loopback ZeroMQ.

A frontend driver (a ROUTER, in this process) sends prediction batches exactly as Clipper's
query frontend does, one in flight at a time, to two containers running in their own processes:

* baseline: a bare DEALER that answers each request with a prebuilt response of the same frame
  layout (only the msg_id echoed): the cost of the ZeroMQ traffic alone;
* runtime: :class:`bentolite.clipper.runtime.ClipperRuntime` with a trivial handler (one
  constant output per input): parsing, the worker-thread hand-off, building the response.

For batch sizes 1, 16 and 256 of inputs of 4 and 1000 doubles it prints a markdown table of
batches/s, µs per batch, the runtime's overhead per batch (runtime - baseline) and the ratio.

    python benchmarks/clipper_bench.py [--seconds 1.0]

Each side of each cell gets ``--seconds`` in total, as alternating rounds after a short warm-up,
and the fastest round counts; the whole run takes well under a minute.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass

import numpy as np
import zmq

from bentolite.clipper.protocol import (
    ContainerMetadata,
    HeartbeatType,
    InputType,
    PredictionResponse,
    build_container_metadata,
    build_heartbeat,
    build_heartbeat_reply,
    build_prediction_request,
    build_prediction_response,
    parse_container_message,
)

BATCH_SIZES = (1, 16, 256)
VECTOR_LENGTHS = (4, 1000)
WARMUP_BATCHES = 20
#: alternating baseline/runtime rounds per cell
ROUNDS = 5
#: hard cap on the whole run, in seconds
TIME_LIMIT = 55.0

_RESPONSE_TYPE = build_prediction_response(0, [])[1]
_MSG_ID_FRAME = 3  # index of the msg_id frame in a request (after the delimiter)


# --- the two containers (child processes) -----------------------------------------------------


def serve_baseline(port: int) -> None:
    """Answer every request with a prebuilt response of the right shape; nothing else."""
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{port}")
    sock.send_multipart(build_heartbeat())
    sock.recv_multipart()  # heartbeat type 1
    sock.send_multipart(build_container_metadata("baseline", "1", InputType.DOUBLES))
    responses: dict[int, list[bytes]] = {}
    while True:
        frames = sock.recv_multipart()
        n = len(frames) - 7
        response = responses.get(n)
        if response is None:
            response = responses[n] = build_prediction_response(0, ["1.0"] * n)
        response[2] = frames[_MSG_ID_FRAME]
        sock.send_multipart(response)


def serve_runtime(port: int) -> None:
    from bentolite.clipper.runtime import ClipperRuntime

    def trivial(frames: list[bytes]) -> list[str]:
        return ["1.0"] * len(frames)

    runtime = ClipperRuntime(
        trivial,
        model_name="runtime",
        model_version="1",
        input_type=InputType.DOUBLES,
        port=port,
        ready_file=None,
    )
    signal.signal(signal.SIGTERM, lambda *_: runtime.stop())
    runtime.run()


# --- the frontend driver ----------------------------------------------------------------------


class Frontend:
    """A ROUTER that registers containers by model name and sends them batches."""

    def __init__(self) -> None:
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.containers: dict[str, bytes] = {}
        self.msg_id = 0

    def wait_for(self, names: set[str], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not names <= self.containers.keys():
            if not self.sock.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                raise TimeoutError(f"containers not registered: {names - self.containers.keys()}")
            self._handle(self.sock.recv_multipart())

    def _handle(self, frames: list[bytes]) -> PredictionResponse | None:
        rid, body = frames[0], frames[1:]
        message = parse_container_message(body)
        if isinstance(message, ContainerMetadata):
            self.containers[message.model_name] = rid
        elif isinstance(message, PredictionResponse):
            return message
        else:  # heartbeat
            known = rid in self.containers.values()
            kind = HeartbeatType.KEEP_ALIVE if known else HeartbeatType.REQUEST_CONTAINER_METADATA
            self.sock.send_multipart([rid, *build_heartbeat_reply(kind)])
        return None

    def predict(self, name: str, inputs: list[bytes], check: bool = False) -> None:
        rid = self.containers[name]
        self.sock.send_multipart([rid, *build_prediction_request(self.msg_id, InputType.DOUBLES, inputs)])
        self.msg_id = (self.msg_id + 1) % 2**32
        while True:
            frames = self.sock.recv_multipart()
            if frames[0] == rid and frames[2] == _RESPONSE_TYPE and not check:
                return  # the hot path: no parsing, the same for both containers
            response = self._handle(frames)
            if response is not None:
                assert len(response.outputs) == len(inputs), "wrong number of outputs"
                return

    def close(self) -> None:
        self.sock.close(linger=0)
        self.context.term()


@dataclass
class Measurement:
    batches: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.batches / self.seconds

    @property
    def micros(self) -> float:
        return self.seconds / self.batches * 1e6


def measure(frontend: Frontend, name: str, inputs: list[bytes], seconds: float) -> Measurement:
    frontend.predict(name, inputs, check=True)
    for _ in range(WARMUP_BATCHES):
        frontend.predict(name, inputs)
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        frontend.predict(name, inputs)
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            return Measurement(count, now - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per side and cell")
    args = parser.parse_args(argv)

    began = time.monotonic()
    frontend = Frontend()
    spawn = multiprocessing.get_context("spawn")
    children = [
        spawn.Process(target=serve_baseline, args=(frontend.port,), daemon=True),
        spawn.Process(target=serve_runtime, args=(frontend.port,), daemon=True),
    ]
    for child in children:
        child.start()
    rows = []
    try:
        frontend.wait_for({"baseline", "runtime"})
        rng = np.random.default_rng(0)
        for length in VECTOR_LENGTHS:
            for size in BATCH_SIZES:
                if time.monotonic() - began > TIME_LIMIT:
                    print(f"stopped early: over {TIME_LIMIT} s", file=sys.stderr)
                    break
                inputs = [rng.random(length).tobytes() for _ in range(size)]
                # alternate short rounds and keep each side's fastest, so that noise from other
                # processes on the machine hits both sides alike and inflates neither
                rounds = [
                    (
                        measure(frontend, "baseline", inputs, args.seconds / ROUNDS),
                        measure(frontend, "runtime", inputs, args.seconds / ROUNDS),
                    )
                    for _ in range(ROUNDS)
                ]
                base = min((b for b, _ in rounds), key=lambda m: m.micros)
                run = min((r for _, r in rounds), key=lambda m: m.micros)
                rows.append((size, length, base, run))
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.join(5)
        frontend.close()

    print(
        f"Clipper runtime vs. raw ZeroMQ echo, loopback, one batch in flight "
        f"(Python {platform.python_version()}, pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}, "
        f"{os.cpu_count()} CPUs, best of {ROUNDS} rounds in {args.seconds} s per side and cell)\n"
    )
    print(
        "| batch | doubles/input | baseline batches/s | runtime batches/s | baseline µs/batch "
        "| runtime µs/batch | overhead µs/batch | ratio |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, length, base, run in rows:
        print(
            f"| {size} | {length} | {base.per_second:,.0f} | {run.per_second:,.0f} | "
            f"{base.micros:,.1f} | {run.micros:,.1f} | {run.micros - base.micros:,.1f} | "
            f"{run.micros / base.micros:.2f}× |"
        )
    print(f"\ntotal {time.monotonic() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
