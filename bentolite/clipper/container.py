"""Run one API of a bundle as a Clipper model container: ``python -m bentolite.clipper``.

Usage::

    python -m bentolite.clipper [BUNDLE] [--api NAME]

BUNDLE is a bundle directory or store tag; default ``$CLIPPER_MODEL_PATH``, else ``/model``.

Environment: the variables Clipper's container managers set, then bentolite's own.

==========================  =====================================================================
``CLIPPER_MODEL_NAME``      required: the model name registered with Clipper
``CLIPPER_MODEL_VERSION``   required: the version string registered with Clipper (``"1"``)
``CLIPPER_IP``              query frontend host (default ``127.0.0.1``)
``CLIPPER_PORT``            its RPC port (default ``7000``)
``CLIPPER_INPUT_TYPE``      a name Clipper accepts (``doubles``, ``d``, ``ints``...); must agree
                            with the API's adapter. Unset: the adapter's type.
``BENTOLITE_API``           the API to serve when ``--api`` is not given. Unset: the bundle's only
                            API with a Clipper adapter.
``BENTOLITE_READY_FILE``    created once the model is loaded, removed on exit (default
                            ``/model_is_ready.check``, what Clipper's health checks look for);
                            empty: no file.
``BENTOLITE_METRICS_PORT``  serve Prometheus metrics with Clipper's ``clipper_mc_*`` names on this
                            port (Clipper's scrape jobs expect 1390). Unset or empty: no metrics,
                            so a container run by hand opens no port it was not asked to; images
                            meant for Clipper set it to 1390.
==========================  =====================================================================

Exit codes: 0 after SIGTERM or SIGINT; 2 for a configuration error (a missing or invalid
variable, an API mismatch), reported as one line on stderr; any other bentolite error exits
with its own code, also as one line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bentolite.clipper.protocol import InputType
from bentolite.clipper.runtime import DEFAULT_READY_FILE, ClipperRuntime, Handler
from bentolite.exceptions import BentoliteError, ConfigError
from bentolite.serving_process import freeze_loaded_objects

logger = logging.getLogger(__name__)

DEFAULT_MODEL_PATH = "/model"


@dataclass(frozen=True)
class ContainerConfig:
    """What the environment says about the container, checked before the bundle is loaded."""

    model_name: str
    model_version: str
    host: str = "127.0.0.1"
    port: int = 7000
    #: None: take the API adapter's type
    input_type: InputType | None = None
    ready_file: str | None = DEFAULT_READY_FILE
    metrics_port: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ContainerConfig:
        input_type = None
        raw_type = env.get("CLIPPER_INPUT_TYPE")
        if raw_type:
            try:
                input_type = InputType.from_name(raw_type)
            except ValueError as exc:
                raise ConfigError(f"CLIPPER_INPUT_TYPE: {exc}") from None
        return cls(
            model_name=_required(env, "CLIPPER_MODEL_NAME", "the model name registered with Clipper"),
            model_version=_required(
                env, "CLIPPER_MODEL_VERSION", 'the model version registered with Clipper, e.g. "1"'
            ),
            host=env.get("CLIPPER_IP") or "127.0.0.1",
            port=_port(env, "CLIPPER_PORT", 7000),
            input_type=input_type,
            ready_file=env.get("BENTOLITE_READY_FILE", DEFAULT_READY_FILE) or None,
            metrics_port=_port(env, "BENTOLITE_METRICS_PORT", None),
        )


def _required(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name)
    if not value:
        raise ConfigError(f"{name} is {'empty' if value == '' else 'not set'}; set it to {what}")
    return value


def _port(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name)
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 65536):
        raise ConfigError(f"{name}={raw!r} is not a port number; expected an integer in 1..65535")
    return int(raw)


def select_api(service: Any, name: str | None, source: str = "--api") -> Any:
    """The API to serve: ``name`` (given through ``source``), else the only Clipper API."""
    apis = service.apis
    clipper_apis = [a.name for a in apis.values() if a.adapter.clipper_input_type]
    listed = ", ".join(clipper_apis) or "none"
    if name:
        api = apis.get(name)
        if api is None:
            raise ConfigError(f"{source}: {service.name} has no API {name!r}; its Clipper APIs: {listed}")
        if not api.adapter.clipper_input_type:
            raise ConfigError(
                f"{source}: API {name!r} takes {api.adapter.name}, which Clipper cannot call; "
                f"use an API with a Clipper* adapter (here: {listed})"
            )
        return api
    if len(clipper_apis) == 1:
        return apis[clipper_apis[0]]
    if not clipper_apis:
        raise ConfigError(
            f"{service.name} has no API with a Clipper adapter; declare one with "
            "@api(input=ClipperDoublesInput()) (or another Clipper* adapter)"
        )
    raise ConfigError(
        f"{service.name} has {len(clipper_apis)} Clipper APIs ({listed}); choose one with "
        "--api or BENTOLITE_API"
    )


def api_input_type(api: Any, configured: InputType | None) -> InputType:
    """The API adapter's input type, checked against ``CLIPPER_INPUT_TYPE`` when that is set."""
    own = InputType.from_name(api.adapter.clipper_input_type)
    if configured is not None and configured is not own:
        raise ConfigError(
            f"CLIPPER_INPUT_TYPE names {configured.label}, but API {api.name!r} takes "
            f"{own.label} ({api.adapter.name}); set CLIPPER_INPUT_TYPE={own.label}"
        )
    return own


def handler_for(service: Any, api: Any) -> Handler:
    """Raw Clipper input frames -> the API's function -> one output string per input."""
    adapter = api.adapter
    func = service.get_api(api.name).func
    decode, encode = adapter.from_clipper, adapter.to_clipper

    def handle(frames: list[Any]) -> list[str]:
        result = func(service, decode(frames))
        if type(result) is not list and inspect.isawaitable(result):
            result = asyncio.run(result)
        return encode(result, len(frames))

    return handle


def build_runtime(bundle: str, api_name: str | None, env: Mapping[str, str]) -> ClipperRuntime:
    """Check the environment, load the bundle and wire its API into a runtime."""
    from bentolite.bundle import load_bundle

    config = ContainerConfig.from_env(env)
    source = "--api" if api_name else "BENTOLITE_API"
    service = load_bundle(bundle)
    api = select_api(service, api_name or env.get("BENTOLITE_API"), source)
    return ClipperRuntime(
        handler_for(service, api),
        model_name=config.model_name,
        model_version=config.model_version,
        input_type=api_input_type(api, config.input_type),
        host=config.host,
        port=config.port,
        ready_file=config.ready_file,
        metrics_port=config.metrics_port,
    )


@contextlib.contextmanager
def _stop_on_signals(runtime: ClipperRuntime) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def handle(signum: int, frame: Any) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        runtime.stop()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _parse_args(argv: Sequence[str] | None, env: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bentolite.clipper",
        description="Serve one API of a bentolite bundle as a Clipper model container.",
    )
    parser.add_argument(
        "bundle",
        nargs="?",
        default=env.get("CLIPPER_MODEL_PATH") or DEFAULT_MODEL_PATH,
        help="bundle directory or store tag (default: $CLIPPER_MODEL_PATH, else /model)",
    )
    parser.add_argument("--api", help="API to serve (default: $BENTOLITE_API, else the only one)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    env = os.environ
    args = _parse_args(argv, env)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        runtime = build_runtime(args.bundle, args.api, env)
        freeze_loaded_objects()  # the container's process serves this one bundle (serving_process.py)
        with _stop_on_signals(runtime):
            runtime.run()
    except BentoliteError as exc:
        message = " ".join(exc.message.splitlines())
        print(f"bentolite.clipper: error: {message}", file=sys.stderr)
        return exc.exit_code
    return 0
