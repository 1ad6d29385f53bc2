"""How fast results become strict JSON: orjson against the standard library, same values.

Each encoder turns typical API results into the same strict JSON (NaN and infinities as ``null``,
numpy and pandas values as plain JSON values):

* **stdlib**: ``jsonable()`` (a Python walk of the result) then ``json.dumps(allow_nan=False)``,
  the best the standard library does; it is also the server's fallback encoder;
* **orjson**: ``bentolite.adapters.json_encoding.json_dumps``, orjson with a ``default`` hook for
  numpy/pandas values (what the server runs);
* **orjson-numpy**: orjson serializing numpy arrays natively (``OPT_SERIALIZE_NUMPY``), for
  reference only: it writes float32 values at float32 precision, so its answers differ.

The encoders run in interleaved rounds on the same objects; each round times a batch of calls
per encoder, and the table shows the mean time per call over the rounds and the stdlib/orjson
ratio with its lowest and highest round, so a noisy round shows as a wide range. Before timing,
every encoder's output is parsed with a strict parser and compared with the others'.

    python benchmarks/json_bench.py [--rounds 9] [--seconds 0.2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any, Callable

import numpy as np
import orjson
import pandas as pd

from bentolite.adapters.json_encoding import json_dumps, stdlib_dumps


def _orjson_numpy(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY, default=lambda o: o.to_dict("records"))


def payloads() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    probs = rng.random((1000, 3))
    probs[::97, 1] = np.nan
    frame = pd.DataFrame(rng.random((1000, 4)), columns=["a", "b", "c", "d"])
    frame.iloc[::50, 2] = np.nan
    return {
        "iris answer: int64[1]": np.array([2]),
        "labels: int64[10000]": rng.integers(0, 3, 10_000),
        "probabilities: float64[1000,3]": probs,
        "embeddings: float32[100,512]": rng.random((100, 512), dtype=np.float32),
        "list of 10000 floats": rng.random(10_000).tolist(),
        "DataFrame 1000x4 (records)": frame,
        "1000 dicts {label, score}": [{"label": f"class{i % 3}", "score": float(i) / 7} for i in range(1000)],
    }


def strict_loads(data: bytes) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(data, parse_constant=refuse)


def per_call(encode: Callable[[Any], bytes], obj: Any, seconds: float) -> float:
    """Seconds per call, from as many calls as fit in ``seconds``."""
    calls, started = 0, time.perf_counter()
    deadline = started + seconds
    while True:
        encode(obj)
        calls += 1
        now = time.perf_counter()
        if now >= deadline:
            return (now - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=0.2, help="time per encoder per round")
    args = parser.parse_args()
    encoders: dict[str, Callable[[Any], bytes]] = {
        "stdlib": stdlib_dumps,
        "orjson": json_dumps,
        "orjson-numpy": _orjson_numpy,
    }
    print(
        f"Python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"orjson {orjson.__version__}, {platform.machine()}; {args.rounds} interleaved rounds\n"
    )
    print("| result | stdlib | orjson | stdlib / orjson (min-max) | orjson-numpy |")
    print("|---|---:|---:|---:|---:|")
    for name, obj in payloads().items():
        assert strict_loads(stdlib_dumps(obj)) == strict_loads(json_dumps(obj)), name
        times: dict[str, list[float]] = {e: [] for e in encoders}
        for _ in range(args.rounds):
            for encoder, encode in encoders.items():
                times[encoder].append(per_call(encode, obj, args.seconds))
        ratios = [s / o for s, o in zip(times["stdlib"], times["orjson"])]
        mean = {e: statistics.mean(t) for e, t in times.items()}
        print(
            f"| {name} | {_us(mean['stdlib'])} | {_us(mean['orjson'])} | "
            f"{statistics.mean(ratios):.1f}x ({min(ratios):.1f}-{max(ratios):.1f}) | "
            f"{_us(mean['orjson-numpy'])} |"
        )


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


if __name__ == "__main__":
    main()
