"""Build a bundle into a container image on a Docker engine (and push it).

The build context is a copy of the bundle with the target's ``Dockerfile``, ``.dockerignore`` and
entrypoint written into it (:func:`write_build_context`); :func:`containerize` sends it to the
engine named by ``DOCKER_HOST`` through the docker SDK's low-level API and reports the build as a
stream of :class:`BuildEvent` objects. docker is imported only when an image is really built.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Union

import attrs

from bentolite import image_names, store
from bentolite.bundle import warn_if_python_differs
from bentolite.bundle_meta import BundleMeta
from bentolite.dockerfile import default_base_image, target_api, write_docker_files
from bentolite.exceptions import BuildError, BundleError, InvalidArgument

if TYPE_CHECKING:
    import docker

    from bentolite.service import Service

logger = logging.getLogger(__name__)

BundleRef = Union[str, "os.PathLike[str]", "Service"]

_STEP_RE = re.compile(r"^Step (\d+/\d+) : (.*)$")
#: terminal colour codes (the engine paints a step's stderr red)
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: the engine's own bookkeeping between a step's lines
_ENGINE_NOTE_RE = re.compile(r"^\s*(---> |Removing intermediate container )")
_COMMAND_FAILED_RE = re.compile(r"^The command '.*' returned a non-zero code: (\d+)$", re.DOTALL)
_STEP_SUMMARY_CHARS = 100
_CONTEXT_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", f"{store.TEMP_PREFIX}*")


@attrs.frozen
class BuildEvent:
    """One line of what the engine reports.

    ``kind`` is ``"step"`` (a Dockerfile instruction starts: ``Step 3/12 : COPY ...``),
    ``"output"`` (a line printed by that step), ``"push"`` (push progress) or ``"info"``
    (bentolite's own notes: the image built, its size).
    """

    kind: str
    text: str


EventHandler = Callable[[BuildEvent], None]


def _log_event(event: BuildEvent) -> None:
    logger.debug("%s: %s", event.kind, event.text)


# --- the bundle and the image name -------------------------------------------------------------


def bundle_path(bundle_or_tag: BundleRef) -> Path:
    """A bundle directory from a path, a store tag or a saved :class:`~bentolite.Service`."""
    from bentolite.service import Service

    if isinstance(bundle_or_tag, Service):
        if bundle_or_tag.bundle_path is None:
            raise BundleError(
                f"{bundle_or_tag.name} has not been saved; call svc.save() first and pass the "
                "service (or the path or tag it returns)"
            )
        return Path(bundle_or_tag.bundle_path)
    return store.resolve(bundle_or_tag)


def _api_name(meta: BundleMeta, target: str, api: str | None) -> str | None:
    record = target_api(meta, target, api)
    return record.name if record is not None else None


def image_name(meta: BundleMeta, target: str = "http", api: str | None = None, tag: str | None = None) -> str:
    """The image to build: ``tag`` (its ``:TAG`` defaulting to the bundle version), else the
    default name of :func:`bentolite.image_names.default_image_name`."""
    default = image_names.default_image_name(meta.name, meta.version, target, api)
    if not tag:
        return default
    repository, given_tag = image_names.split_image_name(tag)
    name = tag if given_tag else f"{repository}:{default.rpartition(':')[2]}"
    return image_names.check_image_name(name)


def write_build_context(
    bundle_or_tag: BundleRef,
    out_dir: str | os.PathLike[str],
    target: str = "http",
    api: str | None = None,
    base_image: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Path:
    """Write the complete build context of the ``target`` image into ``out_dir`` (which must not
    exist or be empty); ``docker build out_dir`` then builds it. Needs no Docker engine.
    ``labels`` are image labels added to the bundle's own."""
    source = bundle_path(bundle_or_tag)
    meta = BundleMeta.read(source)
    api = _api_name(meta, target, api)
    warn_if_python_differs(
        image_python(base_image or default_base_image(meta)), meta.python_version, f"building {meta.tag}"
    )
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidArgument(f"{out} already exists and is not an empty directory; choose another")
    if out.exists():
        out.rmdir()
    shutil.copytree(source, out, ignore=_CONTEXT_IGNORE)
    write_docker_files(out, meta, target, api, base_image, labels)
    return out


def image_python(base_image: str) -> str | None:
    """The Python of an official-style base image (``python:3.11-slim`` -> ``3.11``), or None."""
    match = re.match(r"^(?:.*/)?python:(3\.\d+)", base_image)
    return match.group(1) if match else None


# --- the engine --------------------------------------------------------------------------------


def _engine_unreachable(exc: Exception) -> BuildError:
    host = os.environ.get("DOCKER_HOST")
    where = f"DOCKER_HOST={host}" if host else "the default socket (DOCKER_HOST is not set)"
    return BuildError(
        f"cannot reach a Docker engine at {where}: {exc}; start Docker or set DOCKER_HOST "
        "to an engine you can reach"
    )


def api_client(client: Any = None) -> docker.APIClient:
    """The docker SDK low-level client: ``client`` itself, ``client.api`` for a
    ``docker.DockerClient``, else one configured from the environment (``DOCKER_HOST``...)."""
    import docker

    if client is not None:
        return client.api if isinstance(client, docker.DockerClient) else client
    try:
        return docker.APIClient(version="auto", **docker.utils.kwargs_from_env())
    except docker.errors.DockerException as exc:
        raise _engine_unreachable(exc) from exc


class _StepLog:
    """Splits the engine's output stream into lines and remembers the current step's output."""

    def __init__(self, on_event: EventHandler) -> None:
        self.on_event = on_event
        self.step: str | None = None
        self.lines: list[str] = []
        self._partial = ""

    def feed(self, chunk: str) -> None:
        text = self._partial + chunk
        *complete, self._partial = text.split("\n")
        for line in complete:
            self._line(line.rstrip("\r"))

    def flush(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = ""

    def _line(self, line: str) -> None:
        line = _ANSI_RE.sub("", line)
        if _STEP_RE.match(line):
            self.step, self.lines = line, []
            self.on_event(BuildEvent("step", line))
        elif line.strip():
            if not _ENGINE_NOTE_RE.match(line):
                self.lines.append(line)
            self.on_event(BuildEvent("output", line))

    def summary(self) -> str:
        """``step 6/15 (RUN pip install ...)``: the current step, its instruction shortened."""
        match = _STEP_RE.match(self.step or "")
        if match is None:
            return "before the first step"
        instruction = " ".join(match.group(2).split())
        if len(instruction) > _STEP_SUMMARY_CHARS:
            instruction = instruction[: _STEP_SUMMARY_CHARS - 3] + "..."
        return f"at step {match.group(1)} ({instruction})"


def build_image(
    client: docker.APIClient,
    context_dir: Path,
    image: str,
    *,
    platform: str | None = None,
    build_args: Mapping[str, str] | None = None,
    no_cache: bool = False,
    on_event: EventHandler = _log_event,
) -> str:
    """Build ``context_dir`` as ``image``; returns the image id. A failed step raises
    :class:`BuildError` whose ``detail`` is that step's output."""
    import docker
    import requests

    steps = _StepLog(on_event)
    image_id = None
    try:
        stream = client.build(
            path=str(context_dir),
            tag=image,
            rm=True,
            forcerm=True,
            pull=False,
            nocache=no_cache,
            buildargs=dict(build_args or {}),
            platform=platform,
            decode=True,
        )
        for message in stream:
            if "stream" in message:
                steps.feed(message["stream"])
            if "aux" in message and isinstance(message["aux"], dict):
                image_id = message["aux"].get("ID", image_id)
            if "error" in message or "errorDetail" in message:
                steps.flush()
                error = message.get("error") or (message.get("errorDetail") or {}).get("message", "")
                raise _failed_step(image, steps, error.strip())
    except docker.errors.APIError as exc:
        raise BuildError(f"the engine refused to build {image}: {exc.explanation or exc}") from exc
    except (docker.errors.DockerException, requests.exceptions.ConnectionError) as exc:
        raise _engine_unreachable(exc) from exc
    steps.flush()
    if image_id is None:
        image_id = client.inspect_image(image)["Id"]
    return image_id


def _failed_step(image: str, steps: _StepLog, error: str) -> BuildError:
    failed_command = _COMMAND_FAILED_RE.match(error)
    reason = f"exit code {failed_command.group(1)}" if failed_command else error
    output = "\n".join(steps.lines)
    return BuildError(f"building {image} failed {steps.summary()}: {reason}", detail=output or error)


def push_image(client: docker.APIClient, image: str, on_event: EventHandler = _log_event) -> None:
    """Push ``image`` (``registry/path:tag``) to its registry."""
    import docker
    import requests

    repository, tag = image_names.split_image_name(image)
    seen: set[tuple[str, str]] = set()
    try:
        for message in client.push(repository, tag=tag, stream=True, decode=True):
            if "error" in message or "errorDetail" in message:
                error = message.get("error") or (message.get("errorDetail") or {}).get("message", "")
                raise BuildError(f"pushing {image} failed: {error.strip()}")
            status = message.get("status")
            if not status or message.get("progressDetail"):
                continue  # byte counts; the layer's final status follows
            layer = message.get("id")
            if (layer or "", status) in seen:
                continue
            seen.add((layer or "", status))
            on_event(BuildEvent("push", f"{layer}: {status}" if layer else status))
    except docker.errors.APIError as exc:
        raise BuildError(f"pushing {image} failed: {exc.explanation or exc}") from exc
    except (docker.errors.DockerException, requests.exceptions.ConnectionError) as exc:
        raise _engine_unreachable(exc) from exc


def containerize(
    bundle_or_tag: BundleRef,
    target: str = "http",
    tag: str | None = None,
    *,
    api: str | None = None,
    base_image: str | None = None,
    platform: str | None = None,
    build_args: Mapping[str, str] | None = None,
    no_cache: bool = False,
    push: bool = False,
    labels: Mapping[str, str] | None = None,
    on_event: EventHandler | None = None,
    docker_client: Any = None,
) -> str:
    """Build the ``target`` image ("http" or "clipper") of a bundle; returns the image name.

    ``bundle_or_tag`` is a bundle directory, a store tag or a saved service. ``tag`` is the image
    name (``[REGISTRY/]NAME[:TAG]``; default ``<name>:<version>``, or
    ``clipper-<name>-<api>:<version>`` for Clipper). ``api`` picks the API a Clipper image
    serves (default: the only API with a Clipper adapter). ``base_image`` replaces the base
    chosen by ``@env``/the bentofile (default ``python:<major.minor>-slim``). ``build_args`` are
    Docker build arguments; ``push=True`` pushes the image to the registry its name starts with.
    ``labels`` are image labels added to the bundle's own (its bentofile ``labels:``).
    ``on_event`` receives every :class:`BuildEvent`; ``docker_client`` is a
    ``docker.DockerClient`` or ``docker.APIClient`` (default: from ``DOCKER_HOST``).
    """
    on_event = on_event or _log_event
    source = bundle_path(bundle_or_tag)
    meta = BundleMeta.read(source)
    api = _api_name(meta, target, api)
    image = image_name(meta, target, api, tag)
    if push and "/" not in image_names.split_image_name(image)[0]:
        raise InvalidArgument(
            f"cannot push {image}: its name has no registry; name it REGISTRY/NAME[:TAG] with -t"
        )
    client = api_client(docker_client)
    try:
        with tempfile.TemporaryDirectory(prefix="bentolite-build-") as tmp:
            context_dir = write_build_context(source, Path(tmp) / "context", target, api, base_image, labels)
            image_id = build_image(
                client,
                context_dir,
                image,
                platform=platform,
                build_args=build_args,
                no_cache=no_cache,
                on_event=on_event,
            )
        size = _image_size(client, image_id)
        on_event(BuildEvent("info", f"built {image} ({image_id[:19]}{size})"))
        if push:
            push_image(client, image, on_event)
            on_event(BuildEvent("info", f"pushed {image}"))
    finally:
        if docker_client is None:
            client.close()
    return image


def _image_size(client: docker.APIClient, image_id: str) -> str:
    import docker

    try:
        size = client.inspect_image(image_id).get("Size")
    except docker.errors.DockerException:
        return ""
    return f", {size / 1e6:.0f} MB" if size else ""


__all__ = [
    "BuildEvent",
    "api_client",
    "build_image",
    "bundle_path",
    "containerize",
    "image_name",
    "push_image",
    "write_build_context",
]
