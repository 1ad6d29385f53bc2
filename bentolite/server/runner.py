"""``serve(target, ...)``: run the HTTP server with uvicorn.

A target (tag, bundle or build directory, ``module.py:attr``) is served by worker processes
under a supervisor (``supervisor.py``), one worker by default: the supervisor binds the port,
each worker loads the service itself and serves on the shared socket, and a worker that dies
is replaced. The target is loaded once here first, so a bad target fails before any port is
bound. A ``Service`` object is served in this process (it cannot be handed to another), and
``reload`` runs uvicorn's reloader, whose worker gets the settings from the environment
variable ``BENTOLITE_SERVE_SETTINGS`` (:func:`app_from_environment`).

Before anything is loaded, the port is tried: a port in use is one :class:`PortInUse` error.

SIGTERM (and Ctrl-C) drains the server: it stops accepting connections, waits for the requests
in flight (each bounded by ``timeout``) and for the batchers to answer their queues, then
exits. The supervisor forwards SIGTERM to every worker, which drains alike.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from bentolite.exceptions import BentoliteError, InvalidArgument
from bentolite.server.app import create_app
from bentolite.server.limits import Limits, parse_size
from bentolite.server.logs import LOG_FORMATS, log_config
from bentolite.server.metrics import MULTIPROC_ENV
from bentolite.server.protocol import protocol_factory
from bentolite.server.targets import load_target, normalize_target, recorded_cors_origins, source_dir
from bentolite.service import Service
from bentolite.store import mark_serving

SETTINGS_ENV = "BENTOLITE_SERVE_SETTINGS"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
DEFAULT_TIMEOUT = 60.0


def _limits(value: Limits | dict[str, Any]) -> Limits:
    return value if isinstance(value, Limits) else Limits(**value)


class PortInUse(BentoliteError):
    """The port the server should listen on is taken by another process."""


@attrs.frozen
class ServeSettings:
    """What each worker needs to build its app."""

    target: str
    timeout: float | None = DEFAULT_TIMEOUT
    limits: Limits = attrs.field(factory=Limits, converter=_limits)
    cors_origins: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    docs: bool = True
    access_log: bool = True
    log_probes: bool = False

    @property
    def max_body_size(self) -> int:
        return self.limits.max_body_size

    def to_json(self) -> str:
        return json.dumps(attrs.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        return cls(**json.loads(text))

    def app_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`create_app` these settings stand for."""
        options = attrs.asdict(self, recurse=False)
        del options["target"]
        return options


def app_from_environment() -> Any:
    """The app factory uvicorn calls in each worker process."""
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise InvalidArgument(f"{SETTINGS_ENV} is not set: start workers with bentolite serve")
    settings = ServeSettings.from_json(text)
    return create_app(load_target(settings.target), **settings.app_options())


def worker_main(settings_json: str, options: dict[str, Any], sock: socket.socket, record_path: str) -> None:
    """A worker process of the supervisor: load the service, serve on ``sock`` until SIGTERM."""
    import uvicorn

    from bentolite.server.supervisor import load_failure_exit
    from bentolite.serving_process import freeze_loaded_objects

    settings = ServeSettings.from_json(settings_json)
    config = uvicorn.Config(lambda: None, **options)  # configures logging before the load
    try:
        app = create_app(load_target(settings.target), **settings.app_options(), record_path=record_path)
    except Exception as exc:  # whatever stops the load, the supervisor gets one logged line
        sys.exit(load_failure_exit(exc))
    config.app = app
    freeze_loaded_objects()
    uvicorn.Server(config).run(sockets=[sock])


def protocol_options(limits: Limits) -> dict[str, Any]:
    """uvicorn options for the HTTP protocol: httptools (h11 where it is missing) with the header
    bounds of ``limits``, and uvloop's event loop where it is installed."""
    return {
        "http": protocol_factory(limits.header_timeout, limits.max_header_size),
        "h11_max_incomplete_event_size": limits.max_header_size,
        "loop": "auto",
    }


def check_port(host: str, port: int) -> None:
    """Raise :class:`PortInUse` when ``host:port`` cannot be bound because it is taken."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidArgument(f"host {host!r} cannot be resolved: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # as uvicorn binds: a port in TIME_WAIT after an earlier server is not "in use"
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"port {port} is in use on {host}: stop the process listening there or choose "
                    "another --port"
                ) from None
            raise BentoliteError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


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
    log_format: str = "text",
    access_log: bool = True,
    log_probes: bool = False,
    cors_origins: Sequence[str] | None = None,
    docs: bool = True,
) -> None:
    """Serve ``target`` over HTTP until SIGTERM or Ctrl-C.

    ``target`` is a tag, a bundle directory, a build directory with a bentofile.yaml,
    ``module.py:attr``, or (one worker, no reload) a ``Service`` object. ``timeout`` bounds each
    request in seconds (None: no bound) and the drain at shutdown. ``limits`` bounds requests
    (:class:`~bentolite.server.limits.Limits`); ``max_body_size``, if given, overrides its
    body size. ``log_format`` is ``text`` or ``json`` (one object per line); ``access_log``
    writes a line per request (probe routes only with ``log_probes``); ``cors_origins`` and
    ``docs`` are :func:`create_app`'s. ``cors_origins=None`` takes the origins the bundle (or the
    build directory's bentofile) records under ``serve.cors_origins``, if any.
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
    if log_format not in LOG_FORMATS:
        raise InvalidArgument(f"log format {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    settings = ServeSettings(
        normalize_target(target) if not isinstance(target, Service) else "",
        timeout=timeout,
        limits=limits,
        cors_origins=tuple(cors_origins or ()),
        docs=docs,
        access_log=access_log,
        log_probes=log_probes,
    )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "log_config": log_config(log_level, log_format),
        "access_log": False,  # bentolite.access writes the access log (middleware.py)
        "timeout_graceful_shutdown": math.ceil(timeout) + 1 if timeout else None,
        **protocol_options(limits),
    }
    if isinstance(target, Service):
        if workers > 1 or reload:
            raise InvalidArgument(
                "a Service object can only be served by one worker without reload: each worker "
                "process loads its own service, so pass a tag, a bundle directory or module.py:attr"
            )
        check_port(host, port)
        mark_serving(target.bundle_path)
        if cors_origins is None:
            settings = attrs.evolve(settings, cors_origins=recorded_cors_origins(target, ""))
        uvicorn.run(create_app(target, **settings.app_options()), **options)
        return
    check_port(host, port)  # before loading: a busy port fails fast, with nothing half-started
    target_text = settings.target
    service = load_target(target_text)  # a bad target fails here, before any port is bound
    mark_serving(service.bundle_path)  # so `bentolite delete` asks before removing it
    if cors_origins is None:
        settings = attrs.evolve(settings, cors_origins=recorded_cors_origins(service, target_text))
    if not reload:
        _supervise(settings, options, workers)
        return
    watched = source_dir(target_text)
    options["reload"] = True
    options["reload_dirs"] = [str(watched)] if watched else None
    with _environment({SETTINGS_ENV: settings.to_json()}):
        uvicorn.run("bentolite.server.runner:app_from_environment", factory=True, **options)


def _supervise(settings: ServeSettings, options: dict[str, Any], workers: int) -> None:
    from bentolite.server.supervisor import Supervisor

    supervisor = Supervisor(
        settings.to_json(), options, workers, drain_seconds=options["timeout_graceful_shutdown"]
    )
    with tempfile.TemporaryDirectory(prefix="bentolite-metrics-") as metrics_dir:
        added = {MULTIPROC_ENV: metrics_dir} if workers > 1 and not os.environ.get(MULTIPROC_ENV) else {}
        with _environment(added):
            status = supervisor.run()
    if status:
        raise SystemExit(status)


@contextlib.contextmanager
def _environment(added: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``added`` (seen by the worker processes), restored afterwards."""
    previous = {key: os.environ.get(key) for key in added}
    os.environ.update(added)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
