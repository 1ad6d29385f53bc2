"""How fast ``bentolite serve`` answers, against the best practical alternatives, in one run.

The same pickled iris SVC behind every server, one row per request
(``[[5.1, 3.5, 1.4, 0.2]]``), loaded by wrk (closed loop: each connection sends its next request
when the previous answer arrives; 1 thread, 32 connections by default):

==================  ==========================================================================
``raw ndarray``     a hand-written Starlette endpoint on uvicorn (``serve/raw_app.py``), with
                    httptools and uvloop as a practitioner installs them: JSON rows -> float64
                    array -> ``model.predict`` on the event loop
``raw DataFrame``   the same, building a pandas DataFrame first
``NdarrayInput``    ``bentolite serve`` of ``serve/iris_service.py``, an ``NdarrayInput`` API
``DataframeInput``  the same server, a ``DataframeInput`` API (``model.predict(df)``)
``batch=True``      the same server, the ``NdarrayInput`` API with adaptive batching
``+ access log``    a second bentolite server of the same service at the default log level,
                    its access log (one line per request) written to a file: its
                    ``NdarrayInput`` API, against the first server's (which logs warnings only)
``BentoML``         ``bentoml serve`` of ``serve/bentoml_service.py`` (an ndarray API), when a
                    ``bentoml`` command is found (``--bentoml PATH``, else next to this Python,
                    else on PATH); its column is left out with a note otherwise
==================  ==========================================================================

The servers run on CPU 0 and wrk on CPU 1 (taskset), so the load generator never competes with
the server. Every side runs once per round, after a warm-up, and a ratio is computed within each
round. The load of this kind of machine drifts within seconds, so each side runs right next to
the baseline it is compared with: a round runs the ndarray group (``BentoML``, ``batch=True``,
``raw ndarray``, ``NdarrayInput``, ``+ access log``, in that order, so each close ratio's two
sides are neighbours, and BentoML's aftermath falls on neither side of the closest one) and the
DataFrame pair, and every other round runs both groups in reverse order, so neither side of a
pair always goes first; a second of idle time separates two runs. The table shows the mean over
the rounds and the range, which is the noise of the machine.

``--fixed-cost`` adds the batching table: a model costing 5 ms of CPU per call whatever its batch
size, unbatched against batched, at 1, 8, 32 and 64 connections.

    python benchmarks/serve_bench.py [--seconds 5] [--rounds 3] [--connections 32] [--fixed-cost]

Needs ``wrk`` (Debian: ``apt-get install wrk``); the default run takes about 2 minutes.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import pickle
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVE_DIR = HERE / "serve"
WARMUP_SECONDS = 2
SERVER_CPU = "0"
WRK_CPU = "1"
CLI = [sys.executable, "-c", "from bentolite.cli import main; main()"]
ROWS = "[[5.1, 3.5, 1.4, 0.2]]"
FIXED_COST_CLIENTS = (1, 8, 32, 64)


@dataclass
class Run:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    #: CPU time of the server's processes (all threads, all children) per answered request
    cpu_us: float = 0.0
    #: the 99.9th percentile and the longest answer, which show the rare long stalls that set
    #: a short run's p99 (from the script's ``done`` hook; 0 when the script has none)
    p999_ms: float = 0.0
    max_ms: float = 0.0


@dataclass
class Side:
    """One row of the comparison: a server, the URL and body posted to it, and its runs."""

    name: str
    server: Server
    path: str
    script: Path
    runs: list[Run] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url(self.path)

    def run(self, clients: int, seconds: float) -> Run:
        cpu = self.server.cpu_seconds()
        run = wrk(self.url, self.script, clients, seconds)
        run.cpu_us = (self.server.cpu_seconds() - cpu) / max(run.requests, 1) * 1e6
        self.runs.append(run)
        return run

    def mean(self, attr: str) -> float:
        return statistics.fmean(getattr(run, attr) for run in self.runs)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(run, attr) for run in self.runs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu: str, command: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *command] if shutil.which("taskset") else command


class Server:
    """A server process listening on a loopback port."""

    def __init__(
        self, name: str, command: list[str], port: int, env: dict[str, str], cwd: Path, ready: str
    ) -> None:
        self.name = name
        self.port = port
        # a file, not a pipe: a server that logs a lot must never block on a full pipe
        self.log = Path(env["BENTOLITE_HOME"]) / f"{name}.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                pinned(SERVER_CPU, command),
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(ready)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url(path), timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{self.name} did not become ready within 120 s: {self.log.read_text()[-2000:]}")

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url(path), timeout=5) as response:
            return response.read().decode()

    def cpu_seconds(self) -> float:
        """CPU seconds the server's processes used so far."""
        return process_tree_cpu(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        # the whole session: bentoml serve runs its workers as child processes
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def process_tree_cpu(root: int) -> float:
    """utime + stime, in seconds, of ``root`` and every live descendant (all their threads)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended meanwhile
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])  # the fields after the name: state, ppid, ...
        ticks[pid] = int(fields[11]) + int(fields[12])
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


_DURATION_RE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def post_script(directory: Path, name: str, body: str) -> Path:
    path = directory / f"{name}.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [==[{body}]==]\n"  # a Lua long string: the JSON needs no escaping
        'wrk.headers["Content-Type"] = "application/json"\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("tail p99.9 %d us max %d us\\n", latency:percentile(99.9), latency.max))\n'
        "end\n"
    )
    return path


def wrk(url: str, script: Path, clients: int, seconds: float) -> Run:
    command = [
        "wrk",
        "-t1",
        f"-c{clients}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(pinned(WRK_CPU, command), capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    percentiles = {p: float(v) * _UNIT_MS[u] for p, v, u in _DURATION_RE.findall(out)}
    if not rate or set(percentiles) != {"50", "99"}:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    done = re.search(r"(\d+) requests in", out)
    run = Run(float(rate.group(1)), percentiles["50"], percentiles["99"], errors, int(done.group(1)))
    tail = re.search(r"tail p99\.9 (\d+) us max (\d+) us", out)
    if tail:
        run.p999_ms, run.max_ms = int(tail.group(1)) / 1000, int(tail.group(2)) / 1000
    return run


#: the order a round runs the sides in: each ratio's two sides are neighbours (see the docstring)
ROUND_ORDER = (
    ("BentoML", "batch=True", "raw ndarray", "NdarrayInput", "+ access log"),
    ("raw DataFrame", "DataframeInput"),
)
#: idle seconds between two runs, so that what a server still does after its run (BentoML's
#: processes most of all) does not fall into the next server's
SETTLE_SECONDS = 1.0


def round_order(sides: list[Side]) -> list[Side]:
    """``sides`` in :data:`ROUND_ORDER`; sides it does not name (none of this script's) last."""
    rank = {name: index for index, name in enumerate(name for group in ROUND_ORDER for name in group)}
    return sorted(sides, key=lambda side: rank.get(side.name, len(rank)))


def interleaved(sides: list[Side], clients: int, seconds: float, rounds: int) -> list[float]:
    """Run every side once per round, in ``sides``' order and every other round in reverse (so
    neighbours stay neighbours and neither goes first always); returns each round's 1-minute
    load."""
    loads = []
    for index in range(rounds):
        for side in sides if index % 2 == 0 else sides[::-1]:
            time.sleep(SETTLE_SECONDS)
            side.run(clients, seconds)
        loads.append(os.getloadavg()[0])
    return loads


def batch_stats(server: Server, api: str) -> tuple[float, float]:
    """(sum, count) of the batch-size histogram of one API, from /metrics."""
    text = server.get("/metrics")

    def value(name: str) -> float:
        match = re.search(rf'^{name}{{api="{api}"}} ([\d.e+]+)$', text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    return value("bentolite_batch_size_sum"), value("bentolite_batch_size_count")


@contextmanager
def bench_home(prefix: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """A temporary ``BENTOLITE_HOME`` holding the iris model every server loads, and the
    environment the servers run in."""
    with tempfile.TemporaryDirectory(prefix=prefix) as home_text:
        home = Path(home_text)
        model = home / "model.pkl"
        write_model(model)
        yield (
            home,
            {**os.environ, "BENTOLITE_HOME": home_text, "PYTHONUNBUFFERED": "1", "IRIS_MODEL": str(model)},
        )


def raw_server(env: dict[str, str]) -> Server:
    """The hand-written endpoint (``serve/raw_app.py``) on uvicorn, on a free port."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "raw_app:app", "--port", str(port)]
    return Server(
        "raw", [*command, "--log-level", "warning", "--no-access-log"], port, env, SERVE_DIR, "/readyz"
    )


def bentolite_server(env: dict[str, str], name: str, *options: str) -> Server:
    """``bentolite serve`` of ``serve/iris_service.py`` with ``options``, on a free port."""
    port = free_port()
    command = [*CLI, "serve", str(SERVE_DIR / "iris_service.py:svc"), "--port", str(port), *options]
    return Server(name, command, port, env, SERVE_DIR, "/readyz")


def write_model(path: Path) -> None:
    """The iris SVC every server loads."""
    from sklearn import datasets, svm

    iris = datasets.load_iris()
    model = svm.SVC(gamma="scale").fit(iris.data, iris.target)
    path.write_bytes(pickle.dumps(model))


def find_bentoml(option: str | None) -> Path | None:
    if option:
        return Path(option)
    beside = Path(sys.executable).with_name("bentoml")
    if beside.exists():
        return beside
    found = shutil.which("bentoml")
    return Path(found) if found else None


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def bentoml_version(command: Path) -> str:
    out = subprocess.run([str(command), "--version"], capture_output=True, text=True).stdout
    match = re.search(r"(\d+\.\d+\.\d+\S*)", out)
    return match.group(1) if match else "unknown"


def table_header(columns: list[str]) -> str:
    return "| " + " | ".join(columns) + " |\n|" + "---|" + "---:|" * (len(columns) - 1)


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def ratio_text(side: Side, base: Side) -> str:
    """Throughput over the baseline's, per round (mean and range), the baseline's CPU time per
    request over this side's (which other load on the machine disturbs less), and in how many
    rounds this side's p99 was no higher than the baseline's."""
    ratios = [a.requests_per_s / b.requests_per_s for a, b in zip(side.runs, base.runs)]
    text = f"{statistics.fmean(ratios):.2f}x"
    if len(ratios) > 1:
        text += f" ({min(ratios):.2f}-{max(ratios):.2f})"
    lower = sum(a.p99_ms <= b.p99_ms for a, b in zip(side.runs, base.runs))
    text += f", CPU {base.mean('cpu_us') / side.mean('cpu_us'):.2f}x"
    text += f", p99 no higher in {lower} of {len(side.runs)} rounds"
    return text + f" (median p99 {side.median('p99_ms'):.1f} vs {base.median('p99_ms'):.1f} ms)"


def spread(side: Side) -> str:
    rates = [run.requests_per_s for run in side.runs]
    if len(rates) < 2:
        return ""
    return f" ±{(max(rates) - min(rates)) / 2 / statistics.fmean(rates) * 100:.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--bentoml", help="the bentoml command to compare with (default: found)")
    parser.add_argument("--fixed-cost", action="store_true", help="add the batching table")
    parser.add_argument("--only", help="comma-separated side names to run (default: all)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    started = time.monotonic()
    seconds = max(1, round(args.seconds))
    bentoml = find_bentoml(args.bentoml)
    fast_stack = all(package_version(name) != "absent" for name in ("httptools", "uvloop"))
    with bench_home("bentolite-bench-") as (home, env):
        servers: list[Server] = []
        try:
            raw = raw_server(env)
            servers.append(raw)
            bento = bentolite_server(env, "bentolite", "--log-level", "warning")
            servers.append(bento)
            logged = bentolite_server(env, "bentolite-logged")
            servers.append(logged)
            rows = post_script(home, "rows", ROWS)
            sides = [
                Side("raw ndarray", raw, "/ndarray", rows),
                Side("raw DataFrame", raw, "/dataframe", rows),
                Side("NdarrayInput", bento, "/ndarray", rows),
                Side("DataframeInput", bento, "/dataframe", rows),
                Side("batch=True", bento, "/ndarray_batched", rows),
                Side("+ access log", logged, "/ndarray", rows),
            ]
            if bentoml is not None:
                port = free_port()
                servers.append(
                    Server(
                        "bentoml",
                        [str(bentoml), "serve", "bentoml_service:Iris", "--port", str(port)],
                        port,
                        {**env, "BENTOML_HOME": str(home / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"},
                        SERVE_DIR,
                        "/readyz",
                    )
                )
                body = '{"rows": ' + ROWS + "}"
                sides.append(Side("BentoML", servers[-1], "/predict", post_script(home, "bentoml", body)))
            if args.only:
                wanted = set(args.only.split(","))
                unknown = wanted - {side.name for side in sides}
                if unknown:
                    names = ", ".join(repr(side.name) for side in sides)
                    missing = ", ".join(sorted(unknown))
                    raise SystemExit(f"--only: no side named {missing}; the sides are {names}")
                sides = [side for side in sides if side.name in wanted]
            for side in sides:
                wrk(side.url, side.script, 8, WARMUP_SECONDS)
            before = batch_stats(bento, "ndarray_batched")
            loads = interleaved(round_order(sides), args.connections, seconds, args.rounds)
            after = batch_stats(bento, "ndarray_batched")
            calls = after[1] - before[1]
            mean_batch = (after[0] - before[0]) / calls if calls else 0.0
            fixed_rows = run_fixed_cost(env, home, seconds, args.rounds, servers) if args.fixed_cost else []
        finally:
            for server in servers:
                server.stop()

    by_name = {side.name: side for side in sides}
    versions = ", ".join(
        f"{name} {package_version(name)}"
        for name in ("uvicorn", "httptools", "uvloop", "starlette", "numpy", "pandas", "scikit-learn")
    )
    machine = platform.processor() or platform.machine()
    print(f"\n{machine}, {os.cpu_count()} cores, Python {platform.python_version()}, {versions}")
    if bentoml is not None:
        print(f"BentoML {bentoml_version(bentoml)} ({bentoml})")
    else:
        print("BentoML: no bentoml command found (pass --bentoml PATH); its column is left out")
    if not fast_stack:
        print("NOTE: httptools or uvloop is not installed: the raw app runs on the slow stack")
    print(
        f"servers on CPU {SERVER_CPU}, wrk -t1 -c{args.connections} on CPU {WRK_CPU}; {args.rounds} "
        f"rounds of {seconds} s per side, each side next to its baseline; 1-minute load after each round: "
        + ", ".join(f"{load:.1f}" for load in loads)
        + "\n"
    )
    baselines = {
        "NdarrayInput": ["raw ndarray", "BentoML"],
        "DataframeInput": ["raw DataFrame"],
        "batch=True": ["raw ndarray", "BentoML"],
        "+ access log": ["NdarrayInput"],
    }
    header = [
        "server",
        "req/s (mean, ± half range)",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "server CPU µs/req",
    ]
    header += ["ratio: req/s (range over rounds), CPU per request", "errors"]
    print(table_header(header))
    for side in sides:
        ratios = [
            f"{ratio_text(side, by_name[base])} {base}"
            for base in baselines.get(side.name, [])
            if base in by_name
        ]
        extra = f"; mean batch {mean_batch:.1f}" if side.name == "batch=True" else ""
        print(
            f"| {side.name} | {fmt(side.mean('requests_per_s'))}{spread(side)} | "
            f"{side.mean('p50_ms'):.1f} | {side.mean('p99_ms'):.1f} | {side.mean('p999_ms'):.1f} | "
            f"{side.mean('max_ms'):.1f} | {side.mean('cpu_us'):,.0f} | "
            f"{'; '.join(ratios) or 'baseline'}{extra} | {sum(run.errors for run in side.runs)} |"
        )
    if fixed_rows:
        print("\nbatching off vs on, a model costing 5 ms of CPU per call whatever its batch size:\n")
        header = ["clients", "off req/s", "on req/s", "ratio", "p50 ms (off / on)", "p99 ms (off / on)"]
        print(table_header([*header, "mean batch", "errors"]))
        for row in fixed_rows:
            print(row)
    print(f"\n(total {time.monotonic() - started:.0f} s)")


def run_fixed_cost(
    env: dict[str, str], home: Path, seconds: int, rounds: int, servers: list[Server]
) -> list[str]:
    port = free_port()
    target = str(SERVE_DIR / "fixed_cost_service.py:svc")
    fixed = Server(
        "fixed-cost",
        [*CLI, "serve", target, "--port", str(port), "--log-level", "warning"],
        port,
        env,
        SERVE_DIR,
        "/readyz",
    )
    servers.append(fixed)
    rows = post_script(home, "fixed", ROWS)
    out = []
    for clients in FIXED_COST_CLIENTS:
        off = Side("off", fixed, "/predict", rows)
        on = Side("on", fixed, "/predict_batched", rows)
        wrk(on.url, rows, clients, WARMUP_SECONDS)
        before = batch_stats(fixed, "predict_batched")
        interleaved([off, on], clients, seconds, rounds)
        after = batch_stats(fixed, "predict_batched")
        calls = after[1] - before[1]
        mean_batch = (after[0] - before[0]) / calls if calls else 0.0
        out.append(
            f"| {clients} | {fmt(off.mean('requests_per_s'))} | {fmt(on.mean('requests_per_s'))} | "
            f"{ratio_text(on, off)} | {off.mean('p50_ms'):.2f} / {on.mean('p50_ms'):.2f} | "
            f"{off.mean('p99_ms'):.2f} / {on.mean('p99_ms'):.2f} | {mean_batch:.1f} | "
            f"{sum(r.errors for r in off.runs + on.runs)} |"
        )
    return out


if __name__ == "__main__":
    main()
