"""How much Python one Clipper batch runs: bytecode instructions, bentolite against the lean container.

The clock on this machine moves by 30% within minutes; the number of Python bytecode instructions
a batch executes does not. This script drives two model containers over real loopback ZeroMQ
(a ROUTER on 127.0.0.1 in this process, speaking RPC v3 as Clipper's query frontend does, one
batch in flight), each container in a child process of its own:

* ``lean, tuned``: :func:`clipper_bench.serve_lean` with ``tuned=True``, the leanest correct
  Python container of ``clipper_bench.py`` (fields as bytes, inputs ``recv_into`` one buffer,
  the backend socket's ``send`` per frame);
* ``bentolite``: ``python -m bentolite.clipper BUNDLE`` as a bentolite Clipper image runs it
  (``bentolite.clipper.container.main``), serving a saved bundle whose ``ClipperDoublesInput``
  API is the same model, ``[str(sum(x)) for x in xs]`` on doubles.

In each child a tracer (``threading.settrace``, opcode events) follows the thread that serves the
socket and does every batch's work (bentolite's ``clipper-serve`` thread, the lean container's
only loop), from its start. A batch is one turn of that loop, from one call of a function the loop
calls once a turn to the next (pyzmq's ``Poller.poll`` in the lean container, ``MessageReader.receive``
in bentolite; where the turn is cut does not change its count): the poll, the reading and checking
of the request, the decode, the user function, the encoding, the send and the loop's own
bookkeeping are all counted. After
``--warmup`` batches per cell, ``--batches`` batches are counted; they are all equal (the table
says so, or shows the range), so one is enough, and more only prove it.

Not counted: C code (libzmq, pyzmq's Cython backend, numpy's kernels, ``struct``), which a
container cannot shed by writing less Python; the frontend side (this process); bentolite's
``run()`` thread, which only sends heartbeats while a prediction runs longer than the poll
timeout (5 s: never here) and is blocked in an ``Event.wait`` meanwhile; the start-up and the
registration (not batches). The trace costs nothing that is counted: the tracer is not traced.

    python benchmarks/clipper_bytecode_count.py [--batches 20] [--warmup 30] [--functions 0]

``--functions N`` also lists the N functions that run the most instructions per batch on each
side. Linux or macOS; nothing is timed, so it can run next to a timing benchmark's quiet machine
without disturbing much (a few seconds of one CPU).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import CodeType
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import zmq  # noqa: E402
from clipper_bench import BENTOLITE, TUNED, Frontend, model, save_bundle, serve_lean  # noqa: E402

from bentolite.clipper.protocol import (  # noqa: E402
    HeartbeatType,
    InputType,
    build_heartbeat_reply,
    build_prediction_request,
)
from bentolite.clipper.sockets import MessageReader  # noqa: E402

#: (inputs per batch, doubles per input)
CELLS = ((1, 4), (256, 4))
NAMES = {TUNED: "lean, tuned", BENTOLITE: "bentolite"}
#: a function each serving loop calls once per turn, which marks where one batch ends
TURN_MARKS = {TUNED: zmq.Poller.poll.__code__, BENTOLITE: MessageReader.receive.__code__}
MODEL_FILES = ("bench_sum_model.py",)  # the service module clipper_bench saves into the bundle


# --- the child: a container whose serving thread is traced -----------------------------------------


class BatchCounter:
    """Counts the opcodes one thread executes, per function, in segments from one call of
    ``turn_mark`` to the next.

    A segment in which the user function ran is one batch; :attr:`done` is set once ``wanted`` of
    them are complete (the thread has called poll again after answering the last).
    """

    def __init__(self, thread_name: str, turn_mark: CodeType, wanted: int) -> None:
        self.thread_name = thread_name
        self.turn_mark = turn_mark
        self.wanted = wanted
        self.batches: list[collections.Counter[CodeType]] = []
        self.done = threading.Event()
        self._current: collections.Counter[CodeType] = collections.Counter()
        self._model_calls = 0

    def trace(self, frame: Any, event: str, arg: Any) -> Any:
        """The global trace function: called when a frame starts, in every thread started after
        :func:`threading.settrace`."""
        if threading.current_thread().name != self.thread_name or self.done.is_set():
            return None
        code = frame.f_code
        if code is self.turn_mark:
            self._close_segment()
        elif _is_model(code):
            self._model_calls += 1
        frame.f_trace_lines = False
        frame.f_trace_opcodes = True
        return self._opcode

    def _opcode(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "opcode":
            self._current[frame.f_code] += 1
        return self._opcode

    def _close_segment(self) -> None:
        if self._model_calls:
            self.batches.append(self._current)
            if len(self.batches) == self.wanted:
                self.done.set()
        self._current = collections.Counter()
        self._model_calls = 0

    def report(self) -> list[dict[str, int]]:
        """Each batch as {"layer|function (file:line)": instructions}."""
        return [{_function_key(code): n for code, n in batch.items()} for batch in self.batches]


def _function_key(code: CodeType) -> str:
    where = f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"
    return f"{_layer(code)}|{code.co_qualname} ({where})"


def _is_model(code: CodeType) -> bool:
    """The user function (the service's predict, or clipper_bench.model) and its comprehension."""
    name = os.path.basename(code.co_filename)
    return name in MODEL_FILES or (name == "clipper_bench.py" and code.co_qualname.startswith("model"))


def _layer(code: CodeType) -> str:
    filename = code.co_filename.replace(os.sep, "/")
    if _is_model(code):
        return "model (user function)"
    if "/bentolite/" in filename:
        return "bentolite/" + filename.rsplit("/bentolite/", 1)[1]
    if os.path.basename(filename) == "clipper_bench.py":
        return "lean container (clipper_bench.py)"
    for package, label in (("/zmq/", "pyzmq (Python parts)"), ("/numpy/", "numpy (Python parts)")):
        if package in filename:
            return label
    return "standard library and other"


def _child(kind: str, port: int, batches: int, bundle: str | None) -> int:
    """Serve as container ``kind`` until ``batches`` batches are counted; print them as JSON."""
    thread_name = "clipper-serve" if kind == BENTOLITE else "lean-serve"
    counter = BatchCounter(thread_name, TURN_MARKS[kind], batches)

    def report_when_done(stop: Any) -> None:
        counter.done.wait()
        print(json.dumps(counter.report()), flush=True)
        stop()

    if kind == TUNED:
        # serve_lean has no stop: the process ends once the report is out
        threading.Thread(target=report_when_done, args=(lambda: os._exit(0),), daemon=True).start()
        threading.settrace(counter.trace)
        threading.Thread(target=serve_lean, args=("127.0.0.1", port, TUNED, True), name=thread_name).start()
        threading.Event().wait()
        return 0
    from bentolite.clipper import container

    # SIGTERM ends the container as it ends in an image: its handler stops the runtime
    threading.Thread(
        target=report_when_done, args=(lambda: os.kill(os.getpid(), signal.SIGTERM),), daemon=True
    ).start()
    os.environ.update(
        CLIPPER_MODEL_NAME=BENTOLITE,
        CLIPPER_MODEL_VERSION="1",
        CLIPPER_IP="127.0.0.1",
        CLIPPER_PORT=str(port),
        BENTOLITE_READY_FILE="",
    )
    threading.settrace(counter.trace)  # for the threads run() starts, the serving thread among them
    return container.main([bundle])  # type: ignore[list-item]


# --- the parent: the frontend, and the tables -----------------------------------------------------


def _drive(kind: str, frontend: Frontend, bundle: Path, warmup: int, batches: int) -> list[dict[str, int]]:
    """Start container ``kind``, send it every cell's batches, return its counted batches."""
    total = len(CELLS) * (warmup + batches)
    command = [sys.executable, __file__, "--child", kind, str(frontend.port), str(total), str(bundle)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        frontend.wait_for({kind})
        rng = np.random.default_rng(0)
        for size, length in CELLS:
            inputs = [rng.random(length).tobytes() for _ in range(size)]
            expected = [o.encode() for o in model([np.frombuffer(b, "<f8") for b in inputs])]
            request = build_prediction_request(0, InputType.DOUBLES, inputs)
            got = frontend.predict(kind, request, size, check=True)
            assert got == expected, f"{kind} answered {got[:3]}..., expected {expected[:3]}..."
            for _ in range(warmup + batches - 1):
                frontend.predict(kind, request, size)
        # A message the container answers with nothing, so that its loop turns once more and
        # the last batch's turn ends wherever the mark is.
        keep_alive = build_heartbeat_reply(HeartbeatType.KEEP_ALIVE)
        frontend.sock.send_multipart([frontend.containers[kind], *keep_alive])
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    if child.returncode != 0 or not out.strip():
        raise SystemExit(f"{kind} container exited with {child.returncode}:\n{err}")
    return json.loads(out.strip().splitlines()[-1])


def _per_layer(batch: dict[str, int]) -> collections.Counter[str]:
    layers: collections.Counter[str] = collections.Counter()
    for key, n in batch.items():
        layers[key.split("|", 1)[0]] += n
    return layers


def _print_cell(size: int, length: int, counted: dict[str, list[dict[str, int]]], functions: int) -> None:
    per_kind = {}
    for kind, batches in counted.items():
        totals = [sum(b.values()) for b in batches]
        spread = "all equal" if min(totals) == max(totals) else f"{min(totals):,}-{max(totals):,}"
        per_kind[kind] = (_per_layer(batches[-1]), spread, batches[-1])
    print(f"### {size} x {length} doubles per batch\n")
    print("| layer | " + " | ".join(NAMES[k] for k in per_kind) + " |")
    print("|---|" + "---:|" * len(per_kind))
    rows = sorted({layer for layers, _, _ in per_kind.values() for layer in layers})
    for layer in rows:
        print(
            f"| {layer} | "
            + " | ".join(f"{layers.get(layer, 0):,}" for layers, _, _ in per_kind.values())
            + " |"
        )
    totals = {kind: sum(layers.values()) for kind, (layers, _, _) in per_kind.items()}
    print("| **total** | " + " | ".join(f"**{t:,}**" for t in totals.values()) + " |")
    spreads = ", ".join(f"{NAMES[k]} {spread}" for k, (_, spread, _) in per_kind.items())
    difference = totals[BENTOLITE] - totals[TUNED]
    print(
        f"\nbentolite / lean, tuned: {totals[BENTOLITE] / totals[TUNED]:.2f}x the instructions "
        f"({abs(difference):,} {'more' if difference >= 0 else 'fewer'} per batch; counted "
        f"batches: {spreads})\n"
    )
    for kind, (_, _, batch) in per_kind.items() if functions else ():
        print(f"{NAMES[kind]}, the {functions} functions running the most instructions:\n")
        print("| function | layer | instructions |\n|---|---|---:|")
        for key, n in sorted(batch.items(), key=lambda kv: -kv[1])[:functions]:
            layer, name = key.split("|", 1)
            print(f"| {name} | {layer} | {n:,} |")
        print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20, help="counted batches per cell and container")
    parser.add_argument("--warmup", type=int, default=30, help="batches per cell before counting")
    parser.add_argument("--functions", type=int, default=0, help="also list the top N functions")
    parser.add_argument(
        "--child", nargs=4, metavar=("KIND", "PORT", "BATCHES", "BUNDLE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        kind, port, batches, bundle = args.child
        return _child(kind, int(port), int(batches), bundle)
    if args.batches < 1 or args.warmup < 1:
        parser.error("--batches and --warmup must be at least 1")

    counted: dict[str, list[dict[str, int]]] = {}
    frontend = Frontend()
    try:
        with tempfile.TemporaryDirectory(prefix="bentolite-clipper-bytecode-") as tmp:
            bundle = save_bundle(Path(tmp))
            for kind in (TUNED, BENTOLITE):
                counted[kind] = _drive(kind, frontend, bundle, args.warmup, args.batches)
    finally:
        frontend.close()
    per_cell = args.warmup + args.batches
    print(
        f"Python bytecode instructions per Clipper batch, model [str(sum(x)) for x in xs] on doubles, "
        f"loopback ZeroMQ (Python {sys.version.split()[0]}, pyzmq {zmq.__version__}, numpy "
        f"{np.__version__}; {args.batches} batches counted per cell after {args.warmup})\n"
    )
    for i, (size, length) in enumerate(CELLS):
        cell = {
            kind: batches[i * per_cell + args.warmup : (i + 1) * per_cell]
            for kind, batches in counted.items()
        }
        _print_cell(size, length, cell, args.functions)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
