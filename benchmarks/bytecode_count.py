"""How much Python one iris request runs: bytecode instructions, bentolite against the raw endpoint.

Time on this kind of machine moves by 30% within minutes; the number of Python bytecode
instructions a request executes does not. This script serves one request at a time, in-process,
through uvicorn's httptools protocol (a real parser, an in-memory transport) on uvloop's event
loop, as ``bentolite serve`` runs, to:

* ``raw ndarray``: the hand-written Starlette endpoint of ``serve_bench.py`` (``serve/raw_app.py``);
* ``NdarrayInput``: ``serve/iris_service.py``'s ``NdarrayInput`` API under bentolite's app and
  protocol, as ``bentolite serve`` builds them (timeout, limits, metrics, request ids; no access
  log).

After a warm-up it traces ``--requests`` requests (``sys.settrace`` with opcode events) and prints
the instructions per request by package, and the ratio. C code (numpy's kernels, orjson, httptools)
is not counted: this measures the Python around the model, which is what a server adds.

``--time ROUNDS`` then times both sides the same way, untraced: ``ROUNDS`` alternating rounds of
``--per-round`` requests each, the process's CPU time per request (the median over the rounds, and
their range). No socket, no load generator and no other process is involved, so this ratio moves
far less than a served benchmark's; it still includes the C code the count leaves out.

    python benchmarks/bytecode_count.py [--requests 50] [--time 12 [--per-round 1000]]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REQUEST = (
    b"POST /ndarray HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nContent-Type: application/json\r\n"
    b"Content-Length: 22\r\n\r\n[[5.1, 3.5, 1.4, 0.2]]"
)
WARMUP = 300
PACKAGES = ("bentolite", "uvicorn", "starlette", "sklearn", "narwhals", "numpy", "pandas", "scipy")


class _Transport(asyncio.Transport):
    """An in-memory transport: what the server writes, and a future set by each write."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.wrote: asyncio.Future[None] | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 3000), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.written.append(data)
        if self.wrote is not None and not self.wrote.done():
            self.wrote.set_result(None)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True


def _servers() -> dict[str, tuple[Any, Any]]:
    """Name -> (uvicorn config, protocol class) of both sides."""
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from bentolite.server.app import create_app
    from bentolite.server.limits import Limits
    from bentolite.server.runner import protocol_options

    sys.path.insert(0, str(HERE / "serve"))
    import iris_service
    import raw_app

    raw = uvicorn.Config(raw_app.app, log_level="warning", access_log=False, http="httptools", loop="none")
    raw.load()
    app = create_app(iris_service.svc, timeout=60.0, access_log=False)
    bento = uvicorn.Config(app, log_level="warning", access_log=False, **protocol_options(Limits()))
    bento.load()
    return {"raw ndarray": (raw, HttpToolsProtocol), "NdarrayInput": (bento, bento.http_protocol_class)}


def _package(filename: str) -> str:
    for name in PACKAGES:
        if f"/{name}/" in filename:
            return name
    return "other (standard library)"


def _connection(config: Any, protocol_class: Any) -> tuple[Any, _Transport]:
    """A function serving one request on a new connection of the server, and its transport."""
    from uvicorn.server import ServerState

    loop = asyncio.get_running_loop()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    transport = _Transport()
    protocol.connection_made(transport)

    async def one() -> None:
        transport.written.clear()
        transport.wrote = loop.create_future()
        protocol.data_received(REQUEST)
        await transport.wrote
        while not transport.written[-1].endswith(b"]"):  # the body (after the head, or with it)
            await asyncio.sleep(0)

    return one, transport


async def _count(config: Any, protocol_class: Any, requests: int) -> tuple[collections.Counter[str], bytes]:
    one, transport = _connection(config, protocol_class)
    for _ in range(WARMUP):
        await one()
    counts: collections.Counter[str] = collections.Counter()
    here = str(Path(__file__).resolve())

    def trace(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename == here:
            return None
        frame.f_trace_opcodes = True
        package = _package(frame.f_code.co_filename)

        def opcode(frame: Any, event: str, arg: Any) -> Any:
            if event == "opcode":
                counts[package] += 1
            return opcode

        return opcode

    sys.settrace(trace)
    try:
        for _ in range(requests):
            await one()
    finally:
        sys.settrace(None)
    return counts, b"".join(transport.written).partition(b"\r\n\r\n")[2]


async def _time(servers: dict[str, tuple[Any, Any]], rounds: int, per_round: int) -> dict[str, list[float]]:
    """CPU µs per request of each side, per round; the sides alternate, every other round in
    reverse order, so neither always runs first."""
    ones = {}
    for name, (config, protocol_class) in servers.items():
        ones[name], _ = _connection(config, protocol_class)
        for _ in range(WARMUP):
            await ones[name]()
    times: dict[str, list[float]] = {name: [] for name in ones}
    names = list(ones)
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            one = ones[name]
            started = time.process_time()
            for _ in range(per_round):
                await one()
            times[name].append((time.process_time() - started) / per_round * 1e6)
    return times


def _run(work: Any) -> Any:
    """``work`` on uvloop's event loop (as the servers run) where it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    if sys.version_info < (3, 11):  # no asyncio.Runner yet
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return asyncio.run(work)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="traced requests per side")
    parser.add_argument("--time", type=int, default=0, metavar="ROUNDS", help="also time ROUNDS rounds")
    parser.add_argument("--per-round", type=int, default=1000, help="timed requests per side and round")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from serve_bench import write_model

    with tempfile.TemporaryDirectory(prefix="bentolite-bytecode-") as home:
        model = Path(home) / "model.pkl"
        write_model(model)
        os.environ["IRIS_MODEL"] = str(model)
        os.environ["BENTOLITE_HOME"] = home
        results = {}
        # the inline policy's bound is the switch interval (inline.py): traced, a model call can
        # take long enough to send the API back to the pool mid-count, whose thread the tracer
        # does not see; with a 1 s bound every side runs on the loop throughout
        sys.setswitchinterval(1.0)
        servers = _servers()
        for name, (config, protocol_class) in servers.items():
            counts, answer = _run(_count(config, protocol_class, args.requests))
            if answer != b"[0]":
                raise SystemExit(f"{name} answered {answer!r}, not [0]")
            results[name] = {package: count / args.requests for package, count in counts.items()}
        times = _run(_time(servers, args.time, args.per_round)) if args.time else {}
    rows = sorted({package for counts in results.values() for package in counts})
    print(
        "Python bytecode instructions per iris request "
        f"(Python {sys.version.split()[0]}, {args.requests} requests traced)"
    )
    print()
    print("| package | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    for package in rows:
        print(
            f"| {package} | "
            + " | ".join(f"{counts.get(package, 0):,.0f}" for counts in results.values())
            + " |"
        )
    totals = [sum(counts.values()) for counts in results.values()]
    print("| **total** | " + " | ".join(f"**{total:,.0f}**" for total in totals) + " |")
    print()
    print(f"NdarrayInput / raw ndarray: {totals[1] / totals[0]:.3f}x the instructions")
    if times:
        print()
        print(f"CPU time per request, untraced ({args.time} alternating rounds of {args.per_round} requests)")
        print()
        print("| | median µs | range over rounds |")
        print("|---|---:|---|")
        for name, values in times.items():
            print(f"| {name} | {statistics.median(values):.1f} | {min(values):.1f}-{max(values):.1f} |")
        raw, bento = (statistics.median(values) for values in times.values())
        ratios = [b / a for a, b in zip(*times.values())]
        print()
        print(
            f"NdarrayInput / raw ndarray: {bento / raw:.3f}x the CPU time "
            f"(per round: {min(ratios):.3f}-{max(ratios):.3f}x)"
        )


if __name__ == "__main__":
    main()
