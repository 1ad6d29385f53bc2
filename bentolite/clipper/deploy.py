"""Deploy one API of a bundle to a Clipper cluster: build its Clipper image, push it, and have
Clipper run and register it.

The connection is duck-typed: anything with ``clipper_admin.ClipperConnection``'s methods works,
so clipper_admin is not a dependency of bentolite.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from bentolite import image_names
from bentolite.bundle_meta import BundleMeta
from bentolite.dockerfile import clipper_api
from bentolite.exceptions import DeployError, InvalidArgument
from bentolite.image_build import BundleRef, EventHandler, bundle_path, containerize, image_name

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
    path = bundle_path(bundle)
    meta = BundleMeta.read(path)
    api = clipper_api(meta, api_name)
    input_type = str(api.clipper_input_type)
    name = image_names.to_clipper_name(model_name or f"{meta.name}-{api.name}", "model name")
    version = image_names.to_clipper_name(model_version or meta.version, "model version")
    for given, converted, what in ((model_name, name, "model name"), (model_version, version, "version")):
        if given is not None and str(given) != converted:
            logger.warning("Clipper %s %r is used as %r", what, given, converted)
    if app_name is not None and not image_names.is_clipper_name(app_name):
        raise InvalidArgument(
            f"app_name {app_name!r} is not usable as a Clipper application (it becomes the route "
            f"/<app>/predict): use lowercase letters, digits and '-', e.g. "
            f"{image_names.to_clipper_name(app_name, 'app_name')!r}"
        )

    image = image_names.with_registry(image_name(meta, "clipper", api.name), registry)
    containerize(
        path,
        "clipper",
        image,
        api=api.name,
        base_image=base_image,
        build_args=build_envs,
        push=registry is not None,
        on_event=on_event,
        docker_client=docker_client,
    )
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
    logger.info("deployed %s:%s from %s", name, version, image)
    if app_name is not None:
        _link_to_app(clipper_conn, app_name, name, input_type, default_output, slo_micros)
    return name, version


def _link_to_app(
    conn: Any, app_name: str, model: str, input_type: str, default_output: str, slo_micros: int
) -> None:
    apps = _call("listing applications", conn.get_all_apps)
    if app_name not in apps:
        _call(
            f"registering application {app_name}",
            conn.register_application,
            name=app_name,
            input_type=input_type,
            default_output=default_output,
            slo_micros=slo_micros,
        )
    linked = _call(f"listing the models of {app_name}", conn.get_linked_models, app_name)
    if model in linked:
        return
    if linked:
        raise DeployError(
            f"application {app_name} already serves {', '.join(linked)} and Clipper links one model "
            f"per application; the model {model} is deployed but not linked: unlink the other "
            "(clipper_conn.unlink_model_from_app) or choose another app_name"
        )
    _call(f"linking {model} to {app_name}", conn.link_model_to_app, app_name, model)


def _call(what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a connection method, turning its failure into a :class:`DeployError` saying what failed."""
    try:
        return method(*args, **kwargs)
    except Exception as exc:  # clipper_admin's exceptions are not importable without it
        raise DeployError(f"{what} failed: {type(exc).__name__}: {exc}") from exc
