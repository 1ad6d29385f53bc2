"""Cold start of the iris HTTP image with bytecode (the default) against without it, in one run.

One bundle of the iris example is saved twice, once with ``compile_bytecode=False`` (the bentofile's
``docker.compile_bytecode: false``), and both are built on the Docker engine ``DOCKER_HOST`` names.
Then each image is started in turn, in alternating rounds, and timed from ``docker run`` to the
first ``/readyz`` 200 (the server has imported the service and loaded the model). A second
measure is steadier on a busy machine: the CPU seconds a fresh container's Python spends to
import bentolite and load the bundle (``bentolite.load("/bundle")``, what the server does before
it is ready), counted by the process itself, so waiting for a CPU is left out. Ratios are
computed within each round; the table shows means over the rounds and the range, which is the
noise of the machine. Image sizes come from the engine.

    python benchmarks/image_bench.py [--rounds 5]

Needs a Docker engine with ``python:3.11-slim``; the first run builds both images (a few
minutes), later runs reuse the engine's layer cache. The images are removed at the end unless
``--keep``.
"""

from __future__ import annotations

import argparse
import platform
import secrets
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "iris_classifier"
TIMEOUT = 180


def save_bundles(directory: Path) -> dict[str, Path]:
    sys.path.insert(0, str(EXAMPLE))
    from iris_classifier import IrisClassifier
    from sklearn import datasets, svm

    from bentolite.bundle import save_bundle

    iris = datasets.load_iris()
    model = svm.SVC(gamma="scale").fit(iris.data, iris.target)
    bundles = {}
    for name, compiled in (("bytecode", True), ("no bytecode", False)):
        service = IrisClassifier().pack("model", model)
        bundles[name] = save_bundle(
            service, target=directory / name.replace(" ", "-"), compile_bytecode=compiled
        )
    return bundles


def time_to_ready(client, image: str) -> float:
    started = time.monotonic()
    container = client.containers.run(image, detach=True, ports={"3000/tcp": ("127.0.0.1", None)})
    try:
        while time.monotonic() - started < TIMEOUT:
            container.reload()
            if container.status == "exited":
                raise RuntimeError(container.logs().decode(errors="replace")[-2000:])
            ports = (container.ports or {}).get("3000/tcp")
            if ports:
                try:
                    url = f"http://127.0.0.1:{ports[0]['HostPort']}/readyz"
                    with urllib.request.urlopen(url, timeout=2) as answer:
                        if answer.status == 200:
                            return time.monotonic() - started
                except (urllib.error.URLError, ConnectionError, OSError):
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"{image} was not ready within {TIMEOUT} s")
    finally:
        container.remove(force=True)


#: run in a fresh container: CPU seconds to start Python, import bentolite and load the bundle
LOAD_CPU = (
    "import time, bentolite; bentolite.load('/bundle'); "
    "import resource; r = resource.getrusage(resource.RUSAGE_SELF); print(r.ru_utime + r.ru_stime)"
)


def load_cpu_seconds(client, image: str) -> float:
    return float(client.containers.run(image, ["python", "-c", LOAD_CPU], remove=True).decode().split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the images")
    args = parser.parse_args()

    import docker

    from bentolite.image_build import containerize

    client = docker.from_env()
    tag = secrets.token_hex(3)
    images: dict[str, str] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, bundle in save_bundles(Path(tmp)).items():
                started = time.monotonic()
                images[name] = containerize(
                    bundle, tag=f"bentolite-bench/iris-{name.replace(' ', '-')}:{tag}", docker_client=client
                )
                print(f"built {images[name]} in {time.monotonic() - started:.0f} s", file=sys.stderr)
        sizes = {name: client.images.get(image).attrs["Size"] / 1e6 for name, image in images.items()}
        for image in images.values():  # a first start warms the engine's caches for both
            time_to_ready(client, image)
        times: dict[str, list[float]] = {name: [] for name in images}
        cpu: dict[str, list[float]] = {name: [] for name in images}
        ratios, cpu_ratios = [], []
        for round_number in range(args.rounds):
            order = list(images) if round_number % 2 == 0 else list(reversed(images))
            measured = {name: time_to_ready(client, images[name]) for name in order}
            loaded = {name: load_cpu_seconds(client, images[name]) for name in order}
            for name in order:
                times[name].append(measured[name])
                cpu[name].append(loaded[name])
            ratios.append(measured["no bytecode"] / measured["bytecode"])
            cpu_ratios.append(loaded["no bytecode"] / loaded["bytecode"])
            print(f"round {round_number + 1}: ready {measured}, load CPU {loaded}", file=sys.stderr)
    finally:
        if not args.keep:
            for image in images.values():
                client.images.remove(image, force=True)
        client.close()

    import bentolite

    print(
        f"\nbentolite {bentolite.__version__}, host Python {platform.python_version()}, image base "
        f"python:3.11-slim, {args.rounds} rounds\n"
    )
    print("| image | size MB | time to first /readyz 200, s | CPU s to import and load |")
    print("|---|---:|---:|---:|")
    for name in images:
        print(f"| {name} | {sizes[name]:.0f} | {_spread(times[name])} | {_spread(cpu[name])} |")
    print(
        f"\nwithout bytecode / with: {_spread(ratios)}x the time to ready, {_spread(cpu_ratios)}x the "
        f"CPU to load; bytecode costs {sizes['bytecode'] - sizes['no bytecode']:.0f} MB"
    )


def _spread(values: list[float]) -> str:
    """``mean (min-max)``."""
    return f"{statistics.mean(values):.2f} ({min(values):.2f}-{max(values):.2f})"


if __name__ == "__main__":
    main()
