"""Ask a running IrisClassifier for predictions over HTTP, the way its two kinds of clients do.

    bentolite serve IrisClassifier:latest --port 3000     # in another terminal
    python client.py [--url http://127.0.0.1:3000]

* ``POST /predict`` takes rows of 4 measurements as JSON (DataframeInput) and answers one
  species per row.
* ``POST /predict_clipper`` takes the bodies a Clipper application takes, ``{"input": [...]}``
  or ``{"input_batch": [[...], ...]}``, and answers like Clipper's query frontend. The same API is
  also routed at ``/predict_clipper/predict``, so code written for ``<clipper>/<app>/predict``
  works against ``bentolite serve`` with only the address changed.

The species are 0 setosa, 1 versicolor and 2 virginica.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import requests

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.5, 3.0, 5.8, 2.2]


def post(url: str, route: str, body: Any, timeout: float = 10.0) -> Any:
    """POST ``body`` as JSON to ``url/route`` and return the decoded answer."""
    response = requests.post(f"{url.rstrip('/')}/{route}", json=body, timeout=timeout)
    if not response.ok:
        # bentolite answers errors as {"error": ..., "detail": ...}: show them, not just the status
        raise SystemExit(f"POST /{route} -> HTTP {response.status_code}: {response.text}")
    return response.json()


def main(url: str) -> dict[str, Any]:
    """Send each kind of request once, print it with its answer, and return the answers."""
    requests_to_send = {
        # DataframeInput: a JSON list of rows (or {"column": [...]}, or text/csv)
        "predict": [SETOSA, VIRGINICA],
        # ClipperFloatsInput: one input, answered like Clipper: {"query_id", "output", "default"}
        "predict_clipper": {"input": VIRGINICA},
        # several inputs in one request: {"batch_predictions": [...]}
        "predict_clipper/predict": {"input_batch": [SETOSA, VIRGINICA]},
    }
    answers = {}
    for route, body in requests_to_send.items():
        answers[route] = post(url, route, body)
        print(f"POST /{route} {json.dumps(body)}\n  -> {json.dumps(answers[route])}")
    return answers


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", default="http://127.0.0.1:3000", help="the server's base URL (default: %(default)s)"
    )
    main(parser.parse_args().url)
