"""CPU a Clipper model container spends per prediction batch, over real loopback ZeroMQ.

A frontend driver (a ZeroMQ ROUTER in this process) sends prediction batches exactly as Clipper's
query frontend does, one batch in flight per container, to three container processes:

* two baselines, the leanest correct Python model containers we could write (:func:`serve_lean`):
  pyzmq, RPC v3 to the byte (handshake, heartbeats, a new session after silence, every request
  frame checked), one numpy decode per batch, the response header built with one ``struct.pack``.
  "lean" receives and sends with ``recv_multipart``/``send_multipart``, as pyzmq's documentation
  does; "lean, tuned" receives the fields as bytes and the inputs with ``recv_into`` into one
  buffer sized from the header, and sends one backend ``send`` call per frame;
* bentolite: ``python -m bentolite.clipper BUNDLE``, the command a bentolite Clipper image runs,
  serving a saved bundle whose ``ClipperDoublesInput`` API is the same model.

The model is ``[str(sum(x)) for x in xs]`` on doubles in both. What is measured is the container
process's CPU time (utime + stime of all its threads, from ``/proc/<pid>/stat``) per batch: the
whole path from the frames to the user function and back to frames. Round trips are printed too,
but they include this process's own (Python) frontend work, which dominates at large batches.

    python benchmarks/clipper_bench.py [--seconds 1.0] [--rounds 5]

Each cell runs ``--rounds`` alternating rounds of ``--seconds`` per container (the order swaps
every round, so drift in the machine's load hits both alike); the table shows the mean over the
rounds and the spread (min-max) of the per-round numbers. Every answer of the first batch of each
cell is compared with the model's expected outputs. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import os
import platform
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

from bentolite.clipper.parsing import parse_container_message
from bentolite.clipper.protocol import (
    ContainerMetadata,
    HeartbeatType,
    InputType,
    PredictionResponse,
    build_heartbeat_reply,
    build_prediction_request,
)

#: (inputs per batch, doubles per input)
CELLS = ((1, 4), (256, 4), (16, 1000))
WARMUP_BATCHES = 50
LEAN, TUNED, BENTOLITE = "lean", "lean-tuned", "bentolite"

_U32 = struct.Struct("<I")
_RESPONSE_TYPE = _U32.pack(1)


def model(xs):
    """The model both containers serve."""
    return [str(sum(x)) for x in xs]


# --- the baseline container -------------------------------------------------------------------


def drain(sock: zmq.Socket) -> None:
    """Drop the rest of the message being received."""
    while sock.getsockopt(zmq.RCVMORE):
        sock.recv(copy=False)


def receive_doubles(sock: zmq.Socket, sizes: tuple[int, ...], more: bool) -> tuple[bool, list]:
    """The inputs of a request, received into one buffer: (False, []) if the frames do not match
    ``sizes``. A message shorter than its header would make the next recv wait for, or read,
    the next message, so the frame count is checked: per frame for empty inputs, else once."""
    n = len(sizes)
    if n and not more:
        return False, []
    buffer = memoryview(bytearray(sum(sizes)))
    views, offset = [], 0
    for size in sizes:
        view = buffer[offset : offset + size]
        if not size and not sock.getsockopt(zmq.RCVMORE):
            return False, []
        try:
            got = sock.recv_into(view, flags=zmq.NOBLOCK)
        except zmq.Again:  # the message ended early
            return False, []
        if got != size:
            drain(sock)
            return False, []
        views.append(view)
        offset += size
    if sock.getsockopt(zmq.RCVMORE):
        drain(sock)
        return False, []
    if n > 1 and min(sizes) == max(sizes):
        return True, list(np.frombuffer(buffer, "<f8").reshape(n, sizes[0] // 8))
    return True, [np.frombuffer(v, "<f8") for v in views]


def serve_lean(host: str, port: int, name: str, tuned: bool) -> None:
    """A minimal, correct Clipper RPC v3 doubles container: the baseline to beat.

    ``tuned=False`` is what the pyzmq documentation suggests (``recv_multipart`` and
    ``send_multipart``); ``tuned=True`` uses every technique found cheaper on pyzmq 27: the fields
    received as bytes, the inputs received with ``recv_into`` into one buffer (every size and the
    frame count checked), and one call of the backend socket's ``send`` per frame.
    """
    from zmq.backend import Socket as BackendSocket

    backend_send = BackendSocket.send  # sock.send without pyzmq's Python wrapper
    heartbeat = [b"", _U32.pack(2)]
    metadata = [b"", _U32.pack(0), name.encode(), b"1", b"3", _U32.pack(3)]
    version, content, predict, doubles = _U32.pack(3), _U32.pack(1), _U32.pack(0), 3
    more = zmq.SNDMORE
    context = zmq.Context()
    while True:  # one iteration per session: a fresh socket, as Clipper's container does
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://{host}:{port}")
        sock.send_multipart(heartbeat)
        last_inbound = time.monotonic()
        heard = False
        while True:
            if not sock.poll(5000):
                if time.monotonic() - last_inbound >= 30:
                    break
                if heard:
                    sock.send_multipart(heartbeat)
                continue
            if tuned:
                # the head as bytes; the inputs straight into one buffer, sized from the header
                frame = sock.recv(copy=False)
                head = [frame.bytes]
                while frame.more and len(head) < 7:
                    frame = sock.recv(copy=False)
                    head.append(frame.bytes)
                frames = None
            else:
                frames = sock.recv_multipart()
                head = frames[:7]
            last_inbound = time.monotonic()
            heard = True
            if len(head) == 4 and head[1] == version and head[2] == b"\x02\0\0\0":
                if head[3] == b"\x01\0\0\0" and (frames is None or len(frames) == 4):
                    sock.send_multipart(metadata)
                continue
            if (
                len(head) != 7
                or head[1] != version
                or head[2] != content
                or len(head[3]) != 4
                or head[4] != predict
                or len(head[5]) != 8
                or len(head[6]) != struct.unpack("<Q", head[5])[0]
                or len(head[6]) % 8
                or len(head[6]) < 16
            ):
                if tuned and frame.more:
                    drain(sock)
                continue  # malformed: skipped
            header = struct.unpack(f"<{len(head[6]) // 8}Q", head[6])
            n, sizes = header[1], header[2:]
            if header[0] != doubles or len(sizes) != n or any(s % 8 for s in set(sizes)):
                if tuned and frame.more:
                    drain(sock)
                continue
            if tuned:
                ok, xs = receive_doubles(sock, sizes, frame.more)
                if not ok:
                    continue
            else:
                inputs = frames[7:]
                if list(sizes) != [*map(len, inputs)]:
                    continue
                if n > 1 and min(sizes) == max(sizes):
                    # one decode for the whole batch; each input is a row view
                    xs = list(np.frombuffer(b"".join(inputs), "<f8").reshape(n, sizes[0] // 8))
                else:
                    xs = [np.frombuffer(f, "<f8") for f in inputs]
            outputs = [o.encode() for o in model(xs)]
            lengths = struct.pack(f"<{n + 1}Q", n, *map(len, outputs))
            response = [b"", content, head[3], struct.pack("<Q", len(lengths)), lengths, *outputs]
            if tuned:
                send = backend_send.__get__(sock)
                for part in response[:-1]:
                    send(part, more)
                send(response[-1])
            else:
                sock.send_multipart(response)
        sock.close(linger=0)


# --- the bentolite container ------------------------------------------------------------------

SERVICE_MODULE = textwrap.dedent(
    """
    import bentolite
    from bentolite.adapters import ClipperDoublesInput


    class SumModel(bentolite.Service):
        @bentolite.api(input=ClipperDoublesInput())
        def predict(self, xs):
            return [str(sum(x)) for x in xs]
    """
)


def save_bundle(workdir: Path) -> Path:
    src = workdir / "src"
    src.mkdir()
    (src / "bench_sum_model.py").write_text(SERVICE_MODULE)
    sys.path.insert(0, str(src))
    try:
        import bench_sum_model
    finally:
        sys.path.remove(str(src))
    return Path(bench_sum_model.SumModel().save_to_dir(workdir / "bundle"))


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

    def wait_for(self, names: set[str], timeout: float = 60.0) -> None:
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

    def predict(self, name: str, request: list[bytes], n: int, check: bool = False) -> list[bytes] | None:
        rid = self.containers[name]
        request[3] = _U32.pack(self.msg_id)
        self.sock.send_multipart([rid, *request], copy=False)
        self.msg_id = (self.msg_id + 1) % 2**32
        while True:
            frames = self.sock.recv_multipart()
            if frames[0] == rid and frames[2] == _RESPONSE_TYPE and not check:
                return None  # the hot path: no parsing, the same for both containers
            response = self._handle(frames)
            if response is not None:
                assert response.msg_id == _U32.unpack(request[3])[0], "wrong msg_id"
                assert len(response.outputs) == n, "wrong number of outputs"
                return response.outputs

    def close(self) -> None:
        self.sock.close(linger=0)
        self.context.term()


_CLOCK_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float:
    """utime + stime of every thread of process ``pid``, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICK


@dataclass
class Round:
    batches: int
    seconds: float
    cpu: float

    @property
    def cpu_micros(self) -> float:
        return self.cpu / self.batches * 1e6

    @property
    def trip_micros(self) -> float:
        return self.seconds / self.batches * 1e6


def measure(frontend: Frontend, name: str, pid: int, request: list[bytes], n: int, seconds: float) -> Round:
    for _ in range(WARMUP_BATCHES):
        frontend.predict(name, request, n)
    count = 0
    cpu = process_cpu(pid)
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        frontend.predict(name, request, n)
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            return Round(count, now - started, process_cpu(pid) - cpu)


def summary(rounds: list[Round], attr: str) -> tuple[float, float, float]:
    values = [getattr(r, attr) for r in rounds]
    return sum(values) / len(values), min(values), max(values)


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per round and container")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per cell")
    parser.add_argument("--serve-lean", nargs=2, metavar=("PORT", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_lean:
        port, name = args.serve_lean
        serve_lean("127.0.0.1", int(port), name, tuned=name == TUNED)
        return 0

    began = time.monotonic()
    frontend = Frontend()
    children: dict[str, subprocess.Popen] = {}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        bundle = save_bundle(Path(tmp))
        env = {
            **os.environ,
            "CLIPPER_MODEL_NAME": BENTOLITE,
            "CLIPPER_MODEL_VERSION": "1",
            "CLIPPER_IP": "127.0.0.1",
            "CLIPPER_PORT": str(frontend.port),
            "BENTOLITE_READY_FILE": "",
        }
        try:
            for name in (LEAN, TUNED):
                children[name] = _start(
                    [sys.executable, __file__, "--serve-lean", str(frontend.port), name], os.environ.copy()
                )
            children[BENTOLITE] = _start([sys.executable, "-m", "bentolite.clipper", str(bundle)], env)
            frontend.wait_for(set(children))
            rng = np.random.default_rng(0)
            for size, length in CELLS:
                arrays = [rng.random(length) for _ in range(size)]
                inputs = [a.tobytes() for a in arrays]
                expected = [o.encode() for o in model([np.frombuffer(b, "<f8") for b in inputs])]
                request = build_prediction_request(0, InputType.DOUBLES, inputs)
                for name in children:
                    got = frontend.predict(name, request, size, check=True)
                    assert got == expected, f"{name} answered {got[:3]}..., expected {expected[:3]}..."
                rounds: dict[str, list[Round]] = {name: [] for name in children}
                order = list(children)
                for _ in range(args.rounds):
                    for name in order:
                        rounds[name].append(
                            measure(frontend, name, children[name].pid, request, size, args.seconds)
                        )
                    order.reverse()
                results.append((size, length, rounds))
        finally:
            for child in children.values():
                child.terminate()
            for name, child in children.items():
                try:
                    _, stderr = child.communicate(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    _, stderr = child.communicate()
                if child.returncode not in (0, -15):
                    print(f"{name} exited with {child.returncode}:\n{stderr.decode()}", file=sys.stderr)
            frontend.close()

    import bentolite

    print(
        f"Clipper model container CPU per batch, model [str(sum(x)) for x in xs] on doubles, loopback "
        f"ZeroMQ, one batch in flight (bentolite {bentolite.__version__}, Python "
        f"{platform.python_version()}, numpy {np.__version__}, pyzmq {zmq.__version__}, libzmq "
        f"{zmq.zmq_version()}, {os.cpu_count()} CPUs, {platform.machine()}; mean of {args.rounds} "
        f"alternating rounds of {args.seconds} s per container, min-max in brackets)\n"
    )
    print(
        "| batch | lean CPU µs/batch | lean, tuned CPU µs/batch | bentolite CPU µs/batch "
        "| bentolite / lean | bentolite / tuned | round trip µs (lean / tuned / bentolite) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for size, length, rounds in results:
        cpu = {name: summary(r, "cpu_micros") for name, r in rounds.items()}
        names = (LEAN, TUNED, BENTOLITE)
        trips = " / ".join(f"{summary(rounds[name], 'trip_micros')[0]:,.0f}" for name in names)
        cells = " | ".join(f"{m:,.0f} ({lo:,.0f}-{hi:,.0f})" for m, lo, hi in map(cpu.get, names))
        print(
            f"| {size} x {length} doubles | {cells} | {cpu[BENTOLITE][0] / cpu[LEAN][0]:.2f}x "
            f"| {cpu[BENTOLITE][0] / cpu[TUNED][0]:.2f}x | {trips} |"
        )
    print(f"\ntotal {time.monotonic() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
