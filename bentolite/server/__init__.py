"""The HTTP prediction server.

* :func:`create_app` (``app.py``): the ASGI app serving one service;
* :func:`serve` (``runner.py``): run it with uvicorn, with one or several workers;
* ``batching.py``: adaptive micro-batching; ``metrics.py``: Prometheus metrics;
  ``openapi.py``: the OpenAPI document; ``docs.py``: Swagger UI; ``targets.py``: what
  ``bentolite serve TARGET`` can name.

Importing this package is cheap: starlette, uvicorn and prometheus_client load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "create_app": "bentolite.server.app",
    "serve": "bentolite.server.runner",
    "openapi_spec": "bentolite.server.openapi",
    "load_target": "bentolite.server.targets",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bentolite.server' has no attribute {name!r}")


__all__ = ["create_app", "load_target", "openapi_spec", "serve"]
