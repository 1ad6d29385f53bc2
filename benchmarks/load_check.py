"""A bounded load check of ``bentolite serve``: every answer right, none lost, memory flat.

64 clients (``--clients``) on keep-alive loopback connections post distinct inputs to a plain
API and, in turn, to a batched one of ``load/echo_service.py`` for ``--duration`` seconds each,
in ``--rounds`` rounds, against one server (one worker). Every answer is checked against its
own request: its id, the sum of its numbers and its reversed tag. The table counts, per API and
round, the requests sent, answers lost (connection error or no answer within 10 s), wrong
(a 200 that is not this request's answer), non-2xx by status, latency p50/p99, and the RSS of
the server's processes (supervisor and worker) before and after the round.

    python benchmarks/load_check.py [--duration 60] [--rounds 3] [--clients 64]

Traffic goes to 127.0.0.1 only; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import random
import signal
import socket
import string
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

HERE = Path(__file__).resolve().parent
TARGET = f"{HERE / 'load' / 'echo_service.py'}:svc"
ANSWER_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tally:
    def __init__(self) -> None:
        self.sent = 0
        self.lost = 0
        self.wrong = 0
        self.statuses: collections.Counter[int] = collections.Counter()
        self.latencies: list[float] = []


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def client(port: int, path: str, number: int, until: float, tally: Tally) -> None:
    rng = random.Random(number)
    reader = writer = None
    sequence = 0
    while time.monotonic() < until:
        sequence += 1
        value = {
            "id": f"{number}-{sequence}",
            "xs": [rng.randint(-1000, 1000) for _ in range(rng.randint(1, 8))],
            "tag": "".join(rng.choices(string.ascii_letters, k=rng.randint(1, 24))),
        }
        body = json.dumps(value).encode()
        request = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        expected = {"id": value["id"], "sum": sum(value["xs"]), "echo": value["tag"][::-1]}
        tally.sent += 1
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            status, answer = await asyncio.wait_for(_read_answer(reader), ANSWER_TIMEOUT)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
            tally.lost += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        tally.latencies.append(time.perf_counter() - started)
        tally.statuses[status] += 1
        if status == 200 and json.loads(answer) != expected:
            tally.wrong += 1
    if writer is not None:
        writer.close()


async def load(port: int, path: str, clients: int, seconds: float) -> Tally:
    tally = Tally()
    until = time.monotonic() + seconds
    await asyncio.gather(*(client(port, path, n, until, tally) for n in range(clients)))
    return tally


def rss_mb(pid: int) -> float:
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per API and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=64)
    args = parser.parse_args()

    port = free_port()
    log = open(os.devnull, "wb")
    command = [sys.executable, "-c", "from bentolite.cli import main; main()", "serve", TARGET]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--no-access-log"], stdout=log, stderr=subprocess.STDOUT
    )
    rows = []
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "the server exited"
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.1)
        asyncio.run(load(port, "/plain", 8, 2.0))  # warm-up
        for round_number in range(1, args.rounds + 1):
            for api in ("plain", "batched"):
                before = rss_mb(server.pid)
                tally = asyncio.run(load(port, f"/{api}", args.clients, args.duration))
                after = rss_mb(server.pid)
                rows.append((round_number, api, tally, before, after))
                print(f"round {round_number} {api}: {tally.sent} sent", file=sys.stderr)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()

    print(
        f"{args.clients} clients, {args.duration:g} s per API and round; Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, server and clients on the same machine\n"
    )
    print("| round | API | sent | lost | wrong | non-2xx | req/s | p50 ms | p99 ms | RSS before / after MB |")
    print("|---:|---|---:|---:|---:|---|---:|---:|---:|---:|")
    failed = False
    for round_number, api, tally, before, after in rows:
        non_2xx = {s: n for s, n in sorted(tally.statuses.items()) if not 200 <= s < 300}
        shown = ", ".join(f"{n}×{s}" for s, n in non_2xx.items()) or "0"
        failed |= bool(tally.lost or tally.wrong or non_2xx)
        print(
            f"| {round_number} | {api} | {tally.sent:,} | {tally.lost} | {tally.wrong} | {shown} | "
            f"{len(tally.latencies) / args.duration:,.0f} | {percentile(tally.latencies, 0.5) * 1000:.1f} | "
            f"{percentile(tally.latencies, 0.99) * 1000:.1f} | {before:.0f} / {after:.0f} |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
