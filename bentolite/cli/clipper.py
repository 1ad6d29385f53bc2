"""Clipper commands: ``bentolite clipper-container`` runs one API of a bundle as a Clipper model
container; ``bentolite deploy-clipper`` builds that container and deploys it to a cluster."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from bentolite.exceptions import BuildError, DeployError, InvalidArgument, ModelVersionExists


@click.command("clipper-container")
@click.argument("bundle", required=False)
@click.option("--api", "api_name", help="API to serve (default: $BENTOLITE_API, else the only Clipper API).")
def clipper_container(bundle: str | None, api_name: str | None) -> None:
    """Serve BUNDLE's API to a Clipper query frontend over Clipper's RPC protocol.

    BUNDLE is a bundle directory or a store tag (default: $CLIPPER_MODEL_PATH, else /model).
    The frontend and the model identity come from CLIPPER_MODEL_NAME, CLIPPER_MODEL_VERSION,
    CLIPPER_IP, CLIPPER_PORT and CLIPPER_INPUT_TYPE, as Clipper's container managers set them;
    `python -m bentolite.clipper` is the same command.
    """
    from bentolite.clipper.container import main

    argv = [bundle] if bundle else []
    if api_name:
        argv += ["--api", api_name]
    sys.exit(main(argv))


MANAGERS = ("docker", "kubernetes")


@click.command("deploy-clipper")
@click.argument("bundle", metavar="TAG")
@click.argument("api_name", metavar="API")
@click.option(
    "--manager",
    default="docker",
    show_default=True,
    metavar="docker|kubernetes|MODULE:ATTR",
    help="Clipper's container manager; MODULE:ATTR names another (called with cluster_name=).",
)
@click.option("--cluster-name", default="default-cluster", show_default=True, help="The Clipper cluster.")
@click.option("--kubernetes-proxy", metavar="ADDR", help="kubectl proxy address (with --manager kubernetes).")
@click.option(
    "--use-internal-ip", is_flag=True, help="Reach the nodes by internal IP (with --manager kubernetes)."
)
@click.option("--model-name", help="Model name (default <service>-<api>, lowercased).")
@click.option("--version", "model_version", help="Model version (default: the bundle version).")
@click.option("--app", "app_name", help="Application to link the model to; registered if missing.")
@click.option("--slo-micros", type=click.IntRange(min=1), default=100000, show_default=True)
@click.option("--default-output", default="null", show_default=True, help="A new application's default.")
@click.option("--registry", metavar="HOST[:PORT][/PATH]", help="Push the image there; Clipper pulls it.")
@click.option("--replicas", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--label", "labels", multiple=True, help="A model label (repeatable).")
@click.option(
    "--build-arg", "build_args", multiple=True, metavar="K=V", help="A build argument (repeatable)."
)
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def deploy_clipper(
    bundle: str,
    api_name: str,
    manager: str,
    cluster_name: str,
    kubernetes_proxy: str | None,
    use_internal_ip: bool,
    model_name: str | None,
    model_version: str | None,
    app_name: str | None,
    slo_micros: int,
    default_output: str,
    registry: str | None,
    replicas: int,
    labels: tuple[str, ...],
    build_args: tuple[str, ...],
    output: str,
) -> None:
    """Build the Clipper image of API of bundle TAG and deploy it to a running Clipper cluster.

    Prints MODEL:VERSION as Clipper registered it (-o json: an object). Names are checked
    before anything is built (exit 2), and so is what the cluster would refuse: a version it
    has, an application of another input type or serving another model (exit 1).
    """
    import json

    from bentolite.build_progress import BuildDisplay
    from bentolite.cli.containerize import parse_build_args
    from bentolite.clipper.deploy import deploy_to_clipper, plan_deploy

    _check_names(model_name, model_version, labels)
    if manager != "kubernetes" and (kubernetes_proxy or use_internal_ip):
        raise InvalidArgument("--kubernetes-proxy and --use-internal-ip need --manager kubernetes")
    args = parse_build_args(build_args)
    plan = plan_deploy(bundle, api_name, model_name, model_version, app_name, registry)
    conn = _connect(manager, cluster_name, kubernetes_proxy, use_internal_ip)

    display = BuildDisplay()
    try:
        with display:
            name, version = deploy_to_clipper(
                conn,
                plan.path,
                plan.api.name,
                model_name=plan.model_name,
                model_version=plan.version,
                labels=list(labels),
                build_envs=args,
                registry=registry,
                num_replicas=replicas,
                app_name=app_name,
                slo_micros=slo_micros,
                default_output=default_output,
                on_event=display,
            )
    except ModelVersionExists as exc:
        raise DeployError(f"{exc}: pass --version {exc.suggestion}") from exc
    except BuildError as exc:
        display.show_failure(exc)
        raise
    if output == "json":
        record = {
            "model_name": name,
            "model_version": version,
            "image": plan.image,
            "input_type": plan.input_type,
            "replicas": replicas,
            "app": app_name,
            "cluster": cluster_name,
        }
        click.echo(json.dumps(record, indent=2))
    else:
        click.echo(f"{name}:{version}")


def _check_names(model_name: str | None, model_version: str | None, labels: tuple[str, ...]) -> None:
    from bentolite import image_names

    for option, value in (("--model-name", model_name), ("--version", model_version)):
        if value is not None and not image_names.is_clipper_name(value):
            converted = (
                image_names.to_clipper_name(value)
                if any(c.isascii() and c.isalnum() for c in value)
                else None
            )
            example = f", e.g. {converted!r}" if converted else ""
            raise InvalidArgument(
                f"{option} {value!r} is not a Clipper name: lowercase letters, digits and '-', "
                f"starting and ending with a letter or digit{example}"
            )
    for label in labels:
        if not label or "," in label or ":" in label:
            raise InvalidArgument(f"--label {label!r}: Clipper labels are non-empty and have no ',' or ':'")


def _connect(manager: str, cluster_name: str, proxy: str | None, internal_ip: bool) -> Any:
    """A connected ``clipper_admin.ClipperConnection`` to the named cluster."""
    try:
        import clipper_admin
    except ImportError as exc:
        raise DeployError(
            f"cannot import clipper_admin ({exc}); install it next to bentolite with "
            "pip install --no-deps clipper_admin==0.4.1 kubernetes"
        ) from exc
    if manager == "docker":
        factory, kwargs = clipper_admin.DockerContainerManager, {"cluster_name": cluster_name}
    elif manager == "kubernetes":
        factory = clipper_admin.KubernetesContainerManager
        kwargs = {"cluster_name": cluster_name, "kubernetes_proxy_addr": proxy, "useInternalIP": internal_ip}
    else:
        factory, kwargs = _import_manager(manager), {"cluster_name": cluster_name}
    try:
        container_manager = factory(**kwargs)
    except Exception as exc:  # each manager fails in its own way (docker, kubernetes config)
        raise DeployError(
            f"cannot set up the {manager} container manager: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    conn = clipper_admin.ClipperConnection(container_manager)
    try:
        conn.connect()
    except Exception as exc:  # each manager reports a missing cluster in its own way
        if manager == "docker" and isinstance(exc, KeyError):
            # DockerContainerManager reads the ports from the labels of the cluster's containers
            raise DeployError(
                f"no Clipper cluster named {cluster_name!r} runs on this Docker engine (no "
                f"container labelled {exc}); start one with ClipperConnection("
                f"DockerContainerManager(cluster_name={cluster_name!r})).start_clipper()"
            ) from exc
        raise DeployError(
            f"cannot connect to the Clipper cluster {cluster_name!r} ({manager} manager): "
            f"{type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    return conn


def _import_manager(spec: str) -> Any:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidArgument(f"--manager {spec!r}: expected docker, kubernetes or MODULE:ATTR")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidArgument(f"--manager {spec!r}: cannot import {module_name}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise InvalidArgument(f"--manager {spec!r}: {module_name} has no callable {attr!r}")
    return factory


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


commands = [clipper_container, deploy_clipper]
