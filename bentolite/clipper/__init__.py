"""Clipper integration: the model-container runtime and the deploy helper.

Loaded lazily so that ``import bentolite.clipper`` pulls in neither pyzmq nor docker.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ClipperRuntime", "deploy_bentoml", "deploy_to_clipper"]

_EXPORTS = {
    "ClipperRuntime": "bentolite.clipper.runtime",
    "deploy_bentoml": "bentolite.clipper.deploy",
    "deploy_to_clipper": "bentolite.clipper.deploy",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
