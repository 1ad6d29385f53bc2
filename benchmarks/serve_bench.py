"""How ``bentolite serve`` compares with a hand-written server, and what batching buys.

Two comparisons, same machine, same load generator (wrk, closed loop: each connection sends its
next request when the previous answer arrives), at 1, 8, 32 and 64 concurrent connections:

1. **Overhead**: ``bentolite serve IrisClassifier`` (the example service, saved as a bundle and
   served from the store) against ``serve/minimal_app.py``, the smallest starlette app calling
   the same pickled model on the same JSON rows. Both run one uvicorn worker with the same
   settings and answer the same body with the same JSON.
2. **Batching**: one bentolite server for ``serve/fixed_cost_service.py``, whose model costs
   5 ms of CPU per call whatever the batch size: its unbatched API against its batched API
   (``max_batch_size=64, max_latency_ms=200``).

The servers are pinned to CPU 0 and wrk to CPU 1 (taskset), so the load generator never
competes with the server and the comparison measures what each request costs. The two sides
of a cell run in alternating rounds after a warm-up and each side's fastest round counts,
which keeps a busy machine's noise out of the ratios. Prints markdown tables.

    python benchmarks/serve_bench.py [--seconds 3] [--rounds 3]

Needs ``wrk`` (Debian: ``apt-get install wrk``); the whole run takes about 2.5 minutes.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVE_DIR = HERE / "serve"
CLIENTS = (1, 8, 32, 64)
WARMUP_SECONDS = 2
SERVER_CPU = "0"
WRK_CPU = "1"
CLI = [sys.executable, "-c", "from bentolite.cli import main; main()"]


@dataclass
class Run:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu: str, command: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *command] if shutil.which("taskset") else command


class Server:
    """A server process listening on a loopback port."""

    def __init__(self, name: str, command: list[str], port: int, env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.port = port
        # a file, not a pipe: a server that logs a lot must never block on a full pipe
        self.log = Path(env["BENTOLITE_HOME"]) / f"{name}.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                pinned(SERVER_CPU, command), env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_ready()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url("/readyz"), timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.name} did not become ready within 60 s")

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url(path), timeout=5) as response:
            return response.read().decode()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_DURATION_RE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, clients: int, seconds: float) -> Run:
    command = pinned(
        WRK_CPU,
        [
            "wrk",
            "-t1",
            f"-c{clients}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(SERVE_DIR / "post.lua"),
            url,
        ],
    )
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    percentiles = {p: float(v) * _UNIT_MS[u] for p, v, u in _DURATION_RE.findall(out)}
    if not rate or set(percentiles) != {"50", "99"}:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return Run(float(rate.group(1)), percentiles["50"], percentiles["99"], errors)


def compare(pairs: dict[str, str], clients: int, seconds: float, rounds: int) -> dict[str, Run]:
    """Alternating rounds of each side at one concurrency; the fastest round of each counts."""
    best: dict[str, Run] = {}
    for _ in range(rounds):
        for side, url in pairs.items():
            run = wrk(url, clients, seconds)
            if side not in best or run.requests_per_s > best[side].requests_per_s:
                best[side] = run
    return best


def batch_stats(server: Server, api: str) -> tuple[float, float]:
    """(sum, count) of the batch-size histogram of one API, from /metrics."""
    text = server.get("/metrics")

    def value(name: str) -> float:
        match = re.search(rf'^{name}{{api="{api}"}} ([\d.e+]+)$', text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    return value("bentolite_batch_size_sum"), value("bentolite_batch_size_count")


def save_iris_bundle(env: dict[str, str]) -> Path:
    """Train the example's model and save the example's bundle into the benchmark's store."""
    subprocess.run(
        [sys.executable, "train.py"],
        cwd=ROOT / "examples" / "iris_classifier",
        env=env,
        check=True,
        capture_output=True,
    )
    (model,) = Path(env["BENTOLITE_HOME"]).glob("bundles/IrisClassifier/*/artifacts/model.pkl")
    return model


def table_header(columns: list[str]) -> str:
    return "| " + " | ".join(columns) + " |\n|" + "---:|" * len(columns)


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one wrk round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side and cell")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    started = time.monotonic()
    seconds = max(1, round(args.seconds))
    with tempfile.TemporaryDirectory(prefix="bentolite-bench-") as home:
        env = {**os.environ, "BENTOLITE_HOME": home, "PYTHONUNBUFFERED": "1"}
        model = save_iris_bundle(env)
        quiet = ["--log-level", "warning"]
        ports = [free_port() for _ in range(3)]
        fixed_target = str(SERVE_DIR / "fixed_cost_service.py:svc")
        servers = [
            Server(
                "bentolite",
                [*CLI, "serve", "IrisClassifier", "--port", str(ports[0]), *quiet],
                ports[0],
                env,
                ROOT,
            ),
            Server(
                "minimal",
                [sys.executable, "-m", "uvicorn", "minimal_app:app", "--port", str(ports[1]), *quiet],
                ports[1],
                {**env, "IRIS_MODEL": str(model)},
                SERVE_DIR,
            ),
            Server(
                "fixed-cost",
                [*CLI, "serve", fixed_target, "--port", str(ports[2]), *quiet],
                ports[2],
                env,
                ROOT,
            ),
        ]
        bento, minimal, fixed = servers
        try:
            overhead: dict[int, dict[str, Run]] = {}
            batching: dict[int, dict[str, Run]] = {}
            mean_batch: dict[int, float] = {}
            for server, path in ((bento, "/predict"), (minimal, "/predict"), (fixed, "/predict_batched")):
                wrk(server.url(path), 8, WARMUP_SECONDS)
            for clients in CLIENTS:
                overhead[clients] = compare(
                    {"bentolite": bento.url("/predict"), "minimal": minimal.url("/predict")},
                    clients,
                    seconds,
                    args.rounds,
                )
            for clients in CLIENTS:
                before = batch_stats(fixed, "predict_batched")
                batching[clients] = compare(
                    {"off": fixed.url("/predict"), "on": fixed.url("/predict_batched")},
                    clients,
                    seconds,
                    args.rounds,
                )
                after = batch_stats(fixed, "predict_batched")
                calls = after[1] - before[1]
                mean_batch[clients] = (after[0] - before[0]) / calls if calls else 0.0
        finally:
            for server in servers:
                server.stop()

    machine = platform.processor() or platform.machine()
    print(f"\n{machine}, {os.cpu_count()} cores, Python {platform.python_version()};")
    print(f"servers on CPU {SERVER_CPU}, wrk -t1 on CPU {WRK_CPU}; ", end="")
    print(f"each cell: the best of {args.rounds} rounds of {seconds} s per side\n")
    print("bentolite serve vs a minimal starlette app, iris model, one row per request:\n")
    header = ["clients", "minimal req/s", "bentolite req/s", "ratio", "p50 ms (minimal / bentolite)"]
    print(table_header([*header, "p99 ms (minimal / bentolite)", "errors"]))
    for clients, runs in overhead.items():
        m, b = runs["minimal"], runs["bentolite"]
        print(
            f"| {clients} | {fmt(m.requests_per_s)} | {fmt(b.requests_per_s)} | "
            f"{b.requests_per_s / m.requests_per_s:.2f}x | {m.p50_ms:.2f} / {b.p50_ms:.2f} | "
            f"{m.p99_ms:.2f} / {b.p99_ms:.2f} | {m.errors + b.errors} |"
        )
    print("\nbatching off vs on, a model costing 5 ms of CPU per call whatever its batch size:\n")
    header = ["clients", "off req/s", "on req/s", "ratio", "p50 ms (off / on)", "p99 ms (off / on)"]
    print(table_header([*header, "mean batch", "errors"]))
    for clients, runs in batching.items():
        off, on = runs["off"], runs["on"]
        print(
            f"| {clients} | {fmt(off.requests_per_s)} | {fmt(on.requests_per_s)} | "
            f"{on.requests_per_s / off.requests_per_s:.2f}x | {off.p50_ms:.2f} / {on.p50_ms:.2f} | "
            f"{off.p99_ms:.2f} / {on.p99_ms:.2f} | {mean_batch[clients]:.1f} | {off.errors + on.errors} |"
        )
    print(f"\n(total {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
