"""How evenly a server answers its connections under steady load, and what that does to its p99.

The servers of ``serve_bench.py`` (the same pickled iris SVC, one row per request), loaded by a
closed-loop client that keeps each connection's own latencies (wrk reports only their union):
32 connections on CPU 1, the servers on CPU 0.

=========================  =====================================================================
``raw ndarray``            the hand-written Starlette endpoint on uvicorn (httptools, uvloop)
``raw ndarray, fair``      the same app and uvicorn, with bentolite's connection protocol
                           (``bentolite.server.protocol``: requests read in one turn of the
                           event loop start oldest-waiting connection first)
``NdarrayInput``           ``bentolite serve`` of ``serve/iris_service.py``, its ndarray API
=========================  =====================================================================

Per row: requests per second, p50, p99 and p99.9 over all answers; the fewest and the most
answers one connection got; and the share of the slow answers (over twice the run's median)
that went to the three connections with the most of them (3 of 32 connections is 9%: more
means a few connections take the slow answers, not the load as a whole). Rounds alternate the
order of the rows; the table shows the mean over the rounds.

    python benchmarks/fairness_bench.py [--seconds 8] [--rounds 4] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from serve_bench import (  # noqa: E402
    ROWS,
    SERVE_DIR,
    SETTLE_SECONDS,
    WARMUP_SECONDS,
    WRK_CPU,
    Server,
    bench_home,
    bentolite_server,
    free_port,
    package_version,
    pinned,
    raw_server,
)

#: the raw app on uvicorn with bentolite's connection protocol (its default bounds)
FAIR_RAW = (
    "import sys, uvicorn; from bentolite.server.protocol import protocol_factory; "
    "uvicorn.run('raw_app:app', host='127.0.0.1', port=int(sys.argv[1]), log_level='warning', "
    "access_log=False, http=protocol_factory(10.0, 8192))"
)


# --- the client (runs in its own process, on the load generator's CPU) ---------------------------


def client(port: int, path: str, connections: int, seconds: float) -> dict[str, object]:
    """Closed loop over ``connections`` kept-alive connections: each sends its next request when
    its answer is complete. Per connection, the latency of each answer (seconds)."""
    body = ROWS.encode()
    request = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[list[float]] = [[] for _ in range(connections)]
    clock = time.perf_counter

    class Connection(asyncio.Protocol):
        def __init__(self, index: int, stop: float, done: asyncio.Future[None]) -> None:
            self.index, self.stop, self.done = index, stop, done
            self.buffer = b""
            self.sent = 0.0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.send()

        def send(self) -> None:
            self.sent = clock()
            self.transport.write(request)  # type: ignore[attr-defined]

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
            if len(self.buffer) < end + 4 + length:
                return
            if not head.startswith(b"http/1.1 200"):
                raise SystemExit(f"the server answered {head.splitlines()[0]!r}")
            self.buffer = self.buffer[end + 4 + length :]
            now = clock()
            latencies[self.index].append(now - self.sent)
            if now < self.stop:
                self.send()
            else:
                self.transport.close()
                if not self.done.done():
                    self.done.set_result(None)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = clock() + seconds
        done: list[asyncio.Future[None]] = []
        for index in range(connections):
            future = loop.create_future()
            done.append(future)
            await loop.create_connection(lambda i=index, f=future: Connection(i, stop, f), "127.0.0.1", port)
        await asyncio.wait_for(asyncio.gather(*done), seconds + 30)

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())
    return {"seconds": seconds, "latencies": latencies}


def summary(result: dict[str, object]) -> dict[str, float]:
    per_connection: list[list[float]] = result["latencies"]  # type: ignore[assignment]
    every = sorted(latency for one in per_connection for latency in one)
    count = len(every)

    def percentile(p: float) -> float:
        return every[min(count - 1, int(p / 100 * count))] * 1000

    slow = 2 * statistics.median(every)
    slow_counts = sorted((sum(1 for x in one if x > slow) for one in per_connection), reverse=True)
    answers = [len(one) for one in per_connection]
    return {
        "rate": count / float(result["seconds"]),  # type: ignore[arg-type]
        "p50": percentile(50),
        "p99": percentile(99),
        "p999": percentile(99.9),
        "fewest": min(answers),
        "most": max(answers),
        "slow_share": sum(slow_counts[:3]) / max(1, sum(slow_counts)),
        "slow": sum(slow_counts) / count,
    }


def measure(port: int, path: str, connections: int, seconds: float) -> dict[str, float]:
    command = [sys.executable, __file__, "--client", str(port), path, str(connections), str(seconds)]
    out = subprocess.run(pinned(WRK_CPU, command), capture_output=True, text=True, check=True).stdout
    return json.loads(out)


# --- the comparison --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of one run")
    parser.add_argument("--rounds", type=int, default=4, help="rounds, alternating the order")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--client", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        port, path, connections, seconds = args.client
        print(json.dumps(summary(client(int(port), path, int(connections), float(seconds)))))
        return
    started = time.monotonic()
    with bench_home("bentolite-fairness-") as (_home, env):
        servers: list[Server] = []
        try:
            servers.append(raw_server(env))
            port = free_port()
            servers.append(
                Server(
                    "raw-fair", [sys.executable, "-c", FAIR_RAW, str(port)], port, env, SERVE_DIR, "/readyz"
                )
            )
            servers.append(bentolite_server(env, "bentolite", "--log-level", "warning"))
            names = ["raw ndarray", "raw ndarray, fair", "NdarrayInput"]
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
            for round_index in range(args.rounds):
                order = list(zip(names, servers))
                if round_index % 2:
                    order.reverse()
                for name, server in order:
                    measure(server.port, "/ndarray", args.connections, WARMUP_SECONDS)
                    time.sleep(SETTLE_SECONDS)
                    runs[name].append(measure(server.port, "/ndarray", args.connections, args.seconds))
                    time.sleep(SETTLE_SECONDS)
        finally:
            for server in servers:
                server.stop()
    versions = ", ".join(f"{name} {package_version(name)}" for name in ("uvicorn", "httptools", "uvloop"))
    print(f"\nPython {sys.version.split()[0]}, {versions}; {os.cpu_count()} cores")
    print(f"{args.rounds} rounds of {args.seconds:g} s per row, {args.connections} connections\n")
    print(
        "| server | req/s | p50 ms | p99 ms | p99.9 ms | answers per connection (fewest-most) "
        "| answers over 2x the median | share of them on the worst 3 connections |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        rows = runs[name]

        def mean(key: str, rows: list[dict[str, float]] = rows) -> float:
            return statistics.fmean(row[key] for row in rows)

        p99s = ", ".join(f"{row['p99']:.1f}" for row in rows)
        print(
            f"| {name} | {mean('rate'):,.0f} | {mean('p50'):.1f} | {mean('p99'):.1f} ({p99s}) "
            f"| {mean('p999'):.1f} | {mean('fewest'):,.0f}-{mean('most'):,.0f} | {mean('slow'):.1%} "
            f"| {mean('slow_share'):.0%} |"
        )
    print(f"\n(total {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
