"""Deploy one API of a bundle to a Clipper cluster: build its Clipper image, push it, and have
Clipper run and register it.

The connection is duck-typed: anything with ``clipper_admin.ClipperConnection``'s methods works,
so clipper_admin is not a dependency of bentolite. What Clipper would refuse (a model version it
has, an application of another input type or serving another model, a name Docker refuses) is
checked before anything is built.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bentolite import image_names
from bentolite.build_progress import default_progress
from bentolite.bundle_meta import ApiRecord, BundleMeta
from bentolite.clipper.protocol import InputType
from bentolite.dockerfile import clipper_api
from bentolite.exceptions import DeployError, InvalidArgument, ModelVersionExists, NotFound
from bentolite.image_build import (
    BuildEvent,
    BundleRef,
    EventHandler,
    bundle_path,
    containerize,
    image_name,
)

logger = logging.getLogger(__name__)


def deploy_to_clipper(
    clipper_conn: Any,
    bundle: BundleRef,
    api_name: str,
    model_name: str | None = None,
    model_version: str | None = None,
    labels: Sequence[str] | None = None,
    build_envs: Mapping[str, str] | None = None,
    registry: str | None = None,
    num_replicas: int = 1,
    batch_size: int = -1,
    base_image: str | None = None,
    app_name: str | None = None,
    slo_micros: int = 100000,
    default_output: str = "null",
    *,
    on_event: EventHandler | None = None,
    docker_client: Any = None,
) -> tuple[str, str]:
    """Build the Clipper image of ``api_name`` and deploy it with ``clipper_conn``.

    ``bundle`` is a bundle directory, a store tag or a saved service. The model is named
    ``model_name`` (default ``<service>-<api>``) at ``model_version`` (default: the bundle
    version), both converted to Clipper's ``[a-z0-9]([-a-z0-9]*[a-z0-9])?``. ``build_envs``
    become Docker build arguments. With ``registry`` (``host:port`` or ``host/path``) the image is
    pushed there and Clipper runs it from there, as a cluster on other machines needs.
    With ``app_name`` the application is registered if missing (``slo_micros``,
    ``default_output``) and the model linked to it.

    Before building, it checks what Clipper would refuse: a model name and version Clipper
    already has (:class:`~bentolite.exceptions.ModelVersionExists`), an existing ``app_name`` of
    another input type or linked to another model, an image name Docker refuses.

    Progress (build steps, push, deploy) goes to ``on_event``; without one, to a live display on
    a terminal, else to INFO log lines (logger ``bentolite.build``).

    Returns ``(model_name, model_version)`` as registered with Clipper.
    """
    if not callable(getattr(clipper_conn, "deploy_model", None)):
        raise InvalidArgument(
            "clipper_conn must be a clipper_admin.ClipperConnection (or behave like one), "
            f"got {clipper_conn!r}"
        )
    if not getattr(clipper_conn, "connected", True):
        raise DeployError(
            "the Clipper connection is not connected; call clipper_conn.connect() "
            "(or clipper_conn.start_clipper()) first"
        )
    if not (num_replicas >= 1 and (batch_size == -1 or batch_size > 0)):
        raise InvalidArgument(
            f"num_replicas must be >= 1 and batch_size > 0 or -1 (got {num_replicas}, {batch_size})"
        )
    plan = plan_deploy(bundle, api_name, model_name, model_version, app_name, registry)
    path, api, name, version, image = plan.path, plan.api, plan.model_name, plan.version, plan.image
    input_type = plan.input_type
    for given, converted, what in ((model_name, name, "model name"), (model_version, version, "version")):
        if given is not None and str(given) != converted:
            logger.warning("Clipper %s %r is used as %r", what, given, converted)
    _check_model_version(clipper_conn, name, version)
    app_exists = app_name is not None and _check_app(clipper_conn, app_name, name, input_type)

    progress = default_progress() if on_event is None else contextlib.nullcontext()
    with progress:
        report = on_event or progress
        containerize(
            path,
            "clipper",
            image,
            api=api.name,
            base_image=base_image,
            build_args=build_envs,
            push=registry is not None,
            on_event=report,
            docker_client=docker_client,
        )
        replicas = f"{num_replicas} replica{'s' if num_replicas != 1 else ''}"
        report(BuildEvent("info", f"deploying {name}:{version} ({replicas} of {image})"))
        _call(
            f"deploying {name}:{version} ({image})",
            clipper_conn.deploy_model,
            name=name,
            version=version,
            input_type=input_type,
            image=image,
            labels=list(labels) if labels is not None else None,
            num_replicas=num_replicas,
            batch_size=batch_size,
        )
        report(BuildEvent("info", f"deployed {name}:{version}"))
        if app_name is not None:
            _link_to_app(
                clipper_conn, app_name, app_exists, name, input_type, default_output, slo_micros, report
            )
    return name, version


@dataclass(frozen=True)
class DeployPlan:
    """What a deploy will build and register, worked out from the bundle alone."""

    path: Path
    meta: BundleMeta
    api: ApiRecord
    model_name: str
    version: str
    #: the image Clipper will run, ``[registry/]clipper-<name>-<api>:<bundle version>``
    image: str

    @property
    def input_type(self) -> str:
        return str(self.api.clipper_input_type)


def plan_deploy(
    bundle: BundleRef,
    api_name: str,
    model_name: str | None = None,
    model_version: str | None = None,
    app_name: str | None = None,
    registry: str | None = None,
) -> DeployPlan:
    """Check the names of a deploy without a cluster or an engine: the API must exist and have a
    Clipper adapter, the app name must be usable as a route, the image name one Docker accepts.
    Raises :class:`~bentolite.exceptions.InvalidArgument` naming what is wrong."""
    path = bundle_path(bundle)
    meta = BundleMeta.read(path)
    try:
        api = clipper_api(meta, api_name)
    except NotFound as exc:  # a wrong API name is the caller's mistake, like any bad name
        raise InvalidArgument(exc.message) from None
    name = image_names.to_clipper_name(model_name or f"{meta.name}-{api.name}", "model name")
    version = image_names.to_clipper_name(model_version or meta.version, "model version")
    if app_name is not None and not image_names.is_clipper_name(app_name):
        raise InvalidArgument(
            f"app_name {app_name!r} is not usable as a Clipper application (it becomes the route "
            f"/<app>/predict): use lowercase letters, digits and '-', e.g. "
            f"{image_names.to_clipper_name(app_name, 'app_name')!r}"
        )
    if registry is not None and not registry.strip("/"):
        raise InvalidArgument(f"registry {registry!r} is empty; give host[:port][/path]")
    image = image_names.with_registry(image_name(meta, "clipper", api.name), registry)
    try:
        image_names.check_image_name(image)
    except InvalidArgument as exc:
        raise InvalidArgument(f"registry {registry!r} gives an image name Docker refuses: {exc}") from None
    return DeployPlan(path, meta, api, name, version, image)


def deploy_bentoml(
    clipper_conn: Any,
    bundle_path: BundleRef,
    api_name: str,
    model_name: str | None = None,
    labels: Sequence[str] | None = None,
    build_envs: Mapping[str, str] | None = None,
    **options: Any,
) -> tuple[str, str]:
    """:func:`deploy_to_clipper` with BentoML 0.x's ``deploy_bentoml`` argument order
    (``clipper_conn, bundle_path, api_name, model_name, labels, build_envs``), so code written
    for it runs with only the package name changed. Other keywords go to
    :func:`deploy_to_clipper`."""
    return deploy_to_clipper(
        clipper_conn,
        bundle_path,
        api_name,
        model_name=model_name,
        labels=labels,
        build_envs=build_envs,
        **options,
    )


def _check_model_version(conn: Any, name: str, version: str) -> None:
    registered = _call("listing the models", conn.get_all_models)
    versions = [str(m).split(":", 1)[1] for m in registered if str(m).split(":", 1)[0] == name]
    if version not in versions:
        return
    numbers = [int(v) for v in versions if v.isdigit()]
    suggestion = str(max(numbers) + 1) if numbers else f"{version}-2"
    while suggestion in versions:
        suggestion += "-2"
    raise ModelVersionExists(
        f"Clipper already has model {name} at version {version} (its versions: "
        f"{', '.join(versions)}); deploy under a new version, e.g. {suggestion}",
        name=name,
        version=version,
        suggestion=suggestion,
    )


def _check_app(conn: Any, app_name: str, model: str, input_type: str) -> bool:
    """Whether ``app_name`` exists; raises if it cannot serve ``model``."""
    apps = _call("listing applications", conn.get_all_apps)
    if app_name not in apps:
        return False
    info = _call(f"reading application {app_name}", conn.get_app_info, app_name) or {}
    app_type = info.get("input_type")
    if app_type is not None and InputType.from_name(str(app_type)) is not InputType.from_name(input_type):
        raise DeployError(
            f"application {app_name} takes {app_type} inputs and the API takes {input_type}; "
            "Clipper links a model only to an application of its input type: choose another "
            "app_name, or an API of that type"
        )
    linked = _call(f"listing the models of {app_name}", conn.get_linked_models, app_name)
    linked = [m for m in linked if m != model]
    if linked:
        raise DeployError(
            f"application {app_name} already serves {', '.join(linked)} and Clipper links one model "
            "per application: deploy under that model name to replace its version, unlink it "
            "(clipper_conn.unlink_model_from_app) or choose another app_name"
        )
    return True


def _link_to_app(
    conn: Any,
    app_name: str,
    exists: bool,
    model: str,
    input_type: str,
    default_output: str,
    slo_micros: int,
    report: EventHandler,
) -> None:
    if not exists:
        _call(
            f"registering application {app_name}",
            conn.register_application,
            name=app_name,
            input_type=input_type,
            default_output=default_output,
            slo_micros=slo_micros,
        )
        report(BuildEvent("info", f"registered application {app_name} ({input_type})"))
    linked = _call(f"listing the models of {app_name}", conn.get_linked_models, app_name)
    if model in linked:
        return
    if linked:  # linked by someone else since the check above
        raise DeployError(
            f"application {app_name} already serves {', '.join(linked)} and Clipper links one model "
            f"per application; the model {model} is deployed but not linked: unlink the other "
            "(clipper_conn.unlink_model_from_app) or choose another app_name"
        )
    _call(f"linking {model} to {app_name}", conn.link_model_to_app, app_name, model)
    report(BuildEvent("info", f"linked {model} to application {app_name}"))


def _call(what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a connection method, turning its failure into a :class:`DeployError` saying what failed."""
    try:
        return method(*args, **kwargs)
    except Exception as exc:  # clipper_admin's exceptions are not importable without it
        raise DeployError(f"{what} failed: {type(exc).__name__}: {_one_line(exc)}") from exc


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
