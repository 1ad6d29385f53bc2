"""bentolite: turn a trained model and a small Python class into a versioned bundle, an HTTP
prediction server, or a model container for a Clipper cluster.

Importing bentolite is cheap: pandas, docker, zmq and uvicorn load only when used.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from bentolite import artifacts  # noqa: E402  (the module is also the @artifacts decorator)
from bentolite.exceptions import BentoliteError  # noqa: E402
from bentolite.service import BentoService, Service, api, env, ver  # noqa: E402


def load(path_or_tag: str, *, load_artifacts: bool = True) -> Service:
    """Load a saved service from a bundle directory or a store tag (``Name:version``)."""
    from bentolite.bundle import load_bundle

    return load_bundle(path_or_tag, load_artifacts=load_artifacts)


_LAZY = {
    "serve": ("bentolite.server", "serve"),
    "containerize": ("bentolite.image_build", "containerize"),
    "deploy_to_clipper": ("bentolite.clipper.deploy", "deploy_to_clipper"),
    "build": ("bentolite.builder", "build"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'bentolite' has no attribute {name!r}")


__all__ = [
    "BentoService",
    "BentoliteError",
    "Service",
    "__version__",
    "api",
    "artifacts",
    "build",
    "containerize",
    "deploy_to_clipper",
    "env",
    "load",
    "serve",
    "ver",
]
