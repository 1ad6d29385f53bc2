"""Deploy the iris classifier to a Clipper cluster and query it.

These are the steps of the README's "Deploying to Clipper" section, as one script. It needs a
Docker engine and clipper_admin (see the README for installing it next to bentolite):

    python examples/deploy_to_clipper.py              # start a local Clipper cluster in Docker
    python examples/deploy_to_clipper.py --connect    # use the cluster that is already running
    python examples/deploy_to_clipper.py --connect --bundle IrisClassifier:latest

1. connect: ``ClipperConnection(DockerContainerManager())``, then ``start_clipper()`` or
   ``connect()``;
2. register the application ``bentolite-iris`` (input type ``floats``) unless it exists;
3. train the iris SVM and save a bundle (or take the one ``--bundle`` names);
4. ``deploy_to_clipper``: build the Clipper image of the ``predict_clipper`` API, have Clipper run
   it, and link the model to the application;
5. query ``http://<query address>/bentolite-iris/predict``: ``2`` means virginica.

The cluster keeps running afterwards; stop it with
``ClipperConnection(DockerContainerManager()).connect()`` and ``.stop_all()``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

from bentolite import deploy_to_clipper

APP = "bentolite-iris"
API = "predict_clipper"
INPUT_TYPE = "floats"  # what ClipperFloatsInput takes; the application must match the model
DEFAULT_OUTPUT = "null"  # what Clipper answers when no prediction arrives within the SLO
SLO_MICROS = 100_000
VIRGINICA = [6.5, 3.0, 5.8, 2.2]
IRIS_EXAMPLE = Path(__file__).resolve().parent / "iris_classifier"


def connect(start: bool) -> Any:
    """A connected ``ClipperConnection`` to the cluster on this machine's Docker engine."""
    try:
        from clipper_admin import ClipperConnection, DockerContainerManager
    except ImportError as exc:
        raise SystemExit(
            f"cannot import clipper_admin ({exc}); install it as the README's "
            '"Deploying to Clipper" section shows'
        ) from exc
    conn = ClipperConnection(DockerContainerManager())
    if start:
        conn.start_clipper()  # pulls and runs Clipper's frontends, Redis and Prometheus
        return conn
    try:
        conn.connect()
    except KeyError as exc:  # the manager looks up the cluster's port labels
        raise SystemExit(
            f"no Clipper cluster named {conn.cm.cluster_identifier!r} is running on this Docker engine "
            f"(no label {exc}); start one by leaving out --connect"
        ) from exc
    return conn


def register_app(conn: Any, app: str = APP) -> None:
    """Register the application unless the cluster has it already (a second run)."""
    if app not in conn.get_all_apps():
        conn.register_application(app, INPUT_TYPE, DEFAULT_OUTPUT, SLO_MICROS)


def train_and_save() -> str:
    """Train the iris SVM, pack it into IrisClassifier and save a bundle; returns its path."""
    sys.path.insert(0, str(IRIS_EXAMPLE))
    from train import main as train_and_save_bundle

    return train_and_save_bundle()


def deploy(conn: Any, bundle: str | Path, app: str = APP) -> tuple[str, str]:
    """Deploy the bundle's Clipper API and link it to ``app``; returns Clipper's model name and
    version."""
    name, version = deploy_to_clipper(conn, bundle, API, app_name=app)
    print(f"Deployed {name}:{version}; Clipper's models: {conn.get_all_models()}")
    print(f"{app} serves {conn.get_linked_models(app)}")
    return name, version


def query(conn: Any, measurements: Sequence[float], app: str = APP, wait: float = 30.0) -> dict[str, Any]:
    """One prediction from the application.

    A doubles or floats application refuses integer literals, so every value is sent as a float
    (``6.0``, never ``6``). A model container that has just started may take a moment to connect;
    until then Clipper answers the application's default output, so this asks again for up to
    ``wait`` seconds.
    """
    url = f"http://{conn.get_query_addr()}/{app}/predict"
    body = {"input": [float(x) for x in measurements]}
    deadline = time.monotonic() + wait
    while True:
        response = requests.post(url, json=body, timeout=10)
        if response.status_code != requests.codes.ok:
            raise SystemExit(f"POST {url} -> HTTP {response.status_code}: {response.text}")
        result = response.json()
        if not result.get("default") or time.monotonic() > deadline:
            return result
        time.sleep(1)


def run(conn: Any, bundle: str | Path, app: str = APP) -> dict[str, Any]:
    """Steps 2, 4 and 5 on a connected cluster: register, deploy, query."""
    register_app(conn, app)
    deploy(conn, bundle, app)
    result = query(conn, VIRGINICA, app)
    if result.get("default"):
        print(f"Clipper answered the default output: {result.get('default_explanation', result)}")
    else:
        print(f"Prediction for {VIRGINICA}: {result['output']} ({result})")
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--connect", action="store_true", help="connect to the running cluster instead of starting one"
    )
    parser.add_argument(
        "--bundle", help="deploy this bundle (a directory or Name:version) instead of training one"
    )
    parser.add_argument("--app", default=APP, help="the Clipper application (default: %(default)s)")
    args = parser.parse_args(argv)
    conn = connect(start=not args.connect)
    return run(conn, args.bundle or train_and_save(), args.app)


if __name__ == "__main__":
    main()
