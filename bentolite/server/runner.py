"""``serve(target, ...)``: run the HTTP server with uvicorn.

With one worker the service is loaded here and its app runs in this process. With
``workers > 1`` (or ``reload``) uvicorn starts worker processes that share one listening
socket, and each worker loads the service from the target itself: the settings travel in the
environment variable ``BENTOLITE_SERVE_SETTINGS`` to :func:`app_from_environment`, the app
factory uvicorn calls in every worker. The target is loaded once here first, so a bad target
fails before any port is bound.

SIGTERM (and Ctrl-C) drains the server: it stops accepting connections, waits for the requests
in flight (each bounded by ``timeout``) and for the batchers to answer their queues, then
exits. With several workers, the parent forwards SIGTERM to every worker, which drains alike.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import tempfile
from typing import Any

import attrs

from bentolite.exceptions import InvalidArgument
from bentolite.server.app import create_app
from bentolite.server.limits import Limits, parse_size
from bentolite.server.metrics import MULTIPROC_ENV
from bentolite.server.protocol import BoundedH11Protocol
from bentolite.server.targets import load_target, normalize_target, source_dir
from bentolite.service import Service

SETTINGS_ENV = "BENTOLITE_SERVE_SETTINGS"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
DEFAULT_TIMEOUT = 60.0


def _limits(value: Limits | dict[str, Any]) -> Limits:
    return value if isinstance(value, Limits) else Limits(**value)


@attrs.frozen
class ServeSettings:
    """What each worker needs to build its app."""

    target: str
    timeout: float | None = DEFAULT_TIMEOUT
    limits: Limits = attrs.field(factory=Limits, converter=_limits)

    @property
    def max_body_size(self) -> int:
        return self.limits.max_body_size

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        return cls(**json.loads(text))


def app_from_environment() -> Any:
    """The app factory uvicorn calls in each worker process."""
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise InvalidArgument(f"{SETTINGS_ENV} is not set: start workers with bentolite serve")
    settings = ServeSettings.from_json(text)
    return create_app(load_target(settings.target), limits=settings.limits, timeout=settings.timeout)


def protocol_options(limits: Limits) -> dict[str, Any]:
    """uvicorn options for the HTTP protocol: h11 with the header bounds of ``limits``."""
    return {
        "http": functools.partial(BoundedH11Protocol, header_timeout=limits.header_timeout),
        "h11_max_incomplete_event_size": limits.max_header_size,
    }


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, with bentolite's loggers on its default handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["bentolite"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def serve(
    target: str | os.PathLike[str] | Service,
    *,
    host: str = "127.0.0.1",
    port: int = 3000,
    workers: int = 1,
    reload: bool = False,
    max_body_size: int | str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    log_level: str = "info",
    limits: Limits | None = None,
) -> None:
    """Serve ``target`` over HTTP until SIGTERM or Ctrl-C.

    ``target`` is a tag, a bundle directory, a build directory with a bentofile.yaml,
    ``module.py:attr``, or (one worker, no reload) a ``Service`` object. ``timeout`` bounds each
    request in seconds (None: no bound) and the drain at shutdown. ``limits`` bounds requests
    (:class:`~bentolite.server.limits.Limits`); ``max_body_size``, if given, overrides its
    body size.
    """
    import uvicorn

    if not isinstance(workers, int) or workers < 1:
        raise InvalidArgument(f"workers={workers!r}: run at least one worker")
    if reload and workers > 1:
        raise InvalidArgument("reload runs a single worker; drop workers or reload")
    if not 0 <= port <= 65535:
        raise InvalidArgument(f"port {port} is not a TCP port (0-65535)")
    if log_level not in LOG_LEVELS:
        raise InvalidArgument(f"log level {log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    limits = limits or Limits()
    if max_body_size is not None:
        limits = attrs.evolve(limits, max_body_size=parse_size(max_body_size))
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "log_config": log_config(log_level),
        "timeout_graceful_shutdown": math.ceil(timeout) + 1 if timeout else None,
        **protocol_options(limits),
    }
    if isinstance(target, Service):
        if workers > 1 or reload:
            raise InvalidArgument(
                "a Service object can only be served by one worker without reload: each worker "
                "process loads its own service, so pass a tag, a bundle directory or module.py:attr"
            )
        uvicorn.run(create_app(target, limits=limits, timeout=timeout), **options)
        return
    target_text = normalize_target(target)
    service = load_target(target_text)
    if workers == 1 and not reload:
        uvicorn.run(create_app(service, limits=limits, timeout=timeout), **options)
        return
    settings = ServeSettings(target_text, timeout=timeout, limits=limits)
    if reload:
        watched = source_dir(target_text)
        options["reload"] = True
        options["reload_dirs"] = [str(watched)] if watched else None
    else:
        options["workers"] = workers
    with tempfile.TemporaryDirectory(prefix="bentolite-metrics-") as metrics_dir:
        added = {SETTINGS_ENV: settings.to_json()}
        if workers > 1 and not os.environ.get(MULTIPROC_ENV):
            added[MULTIPROC_ENV] = metrics_dir
        previous = {key: os.environ.get(key) for key in added}
        os.environ.update(added)
        try:
            uvicorn.run("bentolite.server.runner:app_from_environment", factory=True, **options)
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
